"""Throughput benchmark of the beamformer, against the machine's limits and plain-NumPy baselines.

Run from the repository root::

    python -m acam.benchmarks.bench_beamform [--smoke] [--seconds 30] [--json OUT.json]
                                        [--device cpu|cuda|auto] [--repeats 5]

Everything is measured in one process and one run, so every ratio compares figures taken on the same
machine in the same state.  Each timed figure is the median of several runs after a warm-up run;
the spread is given as min..max and as ``(max - min) / median``.

1. Machine limit: complex64 GEMM peak (``a @ a`` on n x n matrices, ``8 n^3`` flops) and memory
   bandwidth (a large ``copyto``, read + write bytes counted), on the CPU and, when the beamformer
   runs there, on the GPU (CuPy/cuBLAS, synchronised before every clock read).
2. Compute step: ``Beamformer.process`` on a block of random frames: ms/frame, frames/s, real-time
   factor (frames/s over the frame rate), achieved GFLOP/s (``flops_per_frame``) and its fraction of
   the GEMM peak.  The first access to ``.steering`` (which includes loading/compiling the Numba
   kernel) and a warm rebuild are timed separately.
3. Baselines: the same maths written plainly with NumPy (or CuPy on the GPU): FFT, one batched
   ``matmul``, ``abs()**2``, transpose; its batched ``matmul`` alone; and the steering matrix built
   naively with ``exp(1j * phase)`` (full mode only, ~2 GB of temporaries).
4. End to end: ``beamform_file`` on a synthetic noise recording (HDF5 in, float32 cube out; no
   warm-up, the first run is also shown alone), the share of it that is not compute, and the
   ``beamform run`` command once in a fresh interpreter (start-up and imports included).
5. Memory: peak resident set size of this process after the end-to-end runs, of the command-line
   child process, and the size of the steering matrix.

Step 4 runs before step 3, so that the peak memory read after it does not hold the baselines'
temporaries; the table is printed in numbered order.  Next to every timing, ``bg`` gives the CPU
cores that other processes kept busy meanwhile (from ``/proc/stat``): on a shared machine, figures
with a high ``bg`` are not comparable with a quiet run.

``--smoke`` runs a tiny configuration in a few seconds (used by ``tests/test_bench_smoke.py``); its
figures say nothing about performance and no goal is evaluated.  ``--json`` writes every figure
(samples included), the configuration, the machine description and the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import acam
from acam.beamform import Beamformer, CameraGrid, SteeringSpec, default_array, steering_matrix, write_raw
from acam.beamform import backend
from acam.core.errors import AcamError
from acam.beamform.geometry import ArrayGeometry
from acam.beamform.pipeline import RunSettings, beamform_file
from acam.beamform.sensor import FRAME_RATE, SAMPLE_FREQ

#: Where the installed package lives: the repository itself in an editable install, so the
#: benchmark can record the checked-out commit; inside site-packages git finds nothing.
PACKAGE_DIR = Path(acam.__file__).resolve().parent

#: Goals of the project for the full configuration (see benchmarks/RESULTS.md).
GOAL_COMPUTE_RTF = 10.0
GOAL_PEAK_FRACTION = 0.75
GOAL_PEAK_FRACTION_TOLERANCE = 0.05   # "about 75%": counted as met from 70%
GOAL_E2E_RTF = 8.0
GOAL_E2E_SECONDS = 30.0
#: Background load (cores busy with other processes) above which a timing is flagged.
BUSY_WARNING = 0.1


# ------------------------------------------------------------------------------------ configuration
@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one benchmark run."""

    mode: str            # "full" or "smoke"
    n_mics: int          # first n_mics microphones of the default array
    rows: int
    cols: int
    bins: int
    block_frames: int    # frames per process() call in the compute step
    seconds: float       # length of the synthetic recording
    gemm_n: int          # GEMM peak on gemm_n x gemm_n complex64 matrices
    copy_mib: int        # size of each array of the bandwidth copy
    repeats: int         # timed runs of the cheap measurements
    heavy_repeats: int   # timed runs of the expensive ones (baselines, end to end)
    naive_steering: bool


def make_config(smoke: bool, seconds: float | None, repeats: int | None) -> Config:
    if smoke:
        cfg = Config("smoke", n_mics=16, rows=6, cols=8, bins=32, block_frames=4, seconds=1.0,
                     gemm_n=256, copy_mib=16, repeats=3, heavy_repeats=3, naive_steering=False)
    else:
        cfg = Config("full", n_mics=128, rows=36, cols=48, bins=512, block_frames=64, seconds=30.0,
                     gemm_n=2048, copy_mib=256, repeats=5, heavy_repeats=3, naive_steering=True)
    changes = {}
    if seconds is not None:
        changes["seconds"] = float(seconds)
    if repeats is not None:
        changes["repeats"] = repeats
        changes["heavy_repeats"] = repeats
    return dataclasses.replace(cfg, **changes)


# -------------------------------------------------------------------------------------- figures
@dataclasses.dataclass
class Figure:
    """One reported number: its samples (one per timed run, or a single derived value)."""

    key: str
    section: str
    label: str
    unit: str
    samples: list[float]
    note: str = ""
    other_cores: float | None = None   # CPU used by other processes meanwhile (see CpuMeter)
    steal_cores: float | None = None

    @property
    def median(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def spread(self) -> float:
        """``(max - min) / median``: 0 for a single sample."""
        m = self.median
        return (max(self.samples) - min(self.samples)) / m if m else 0.0

    def as_json(self) -> dict:
        return {"section": self.section, "label": self.label, "unit": self.unit,
                "median": self.median, "min": min(self.samples), "max": max(self.samples),
                "n": len(self.samples), "spread": self.spread, "samples": list(self.samples),
                "note": self.note, "background_cpu_cores": self.other_cores,
                "steal_cpu_cores": self.steal_cores}


class Report:
    """Figures in the order they were measured, grouped by section for the printed table."""

    def __init__(self):
        self.figures: dict[str, Figure] = {}
        self.sections: list[str] = []

    def add(self, key: str, section: str, label: str, unit: str, samples, note: str = "") -> Figure:
        other, steal = getattr(samples, "other_cores", None), getattr(samples, "steal_cores", None)
        samples = [float(s) for s in np.atleast_1d(samples)]
        fig = Figure(key, section, label, unit, samples, note, other, steal)
        self.figures[key] = fig
        if section not in self.sections:
            self.sections.append(section)
        return fig

    def __getitem__(self, key: str) -> Figure:
        return self.figures[key]

    def __contains__(self, key: str) -> bool:
        return key in self.figures

    def table(self) -> str:
        width = max(len(f.label) for f in self.figures.values())
        lines = [f"median, min..max ((max - min) / median, runs); bg: CPU cores busy with other "
                 f"processes while timed, (!) above {BUSY_WARNING:g}"]
        for section in sorted(self.sections):   # sections are numbered in reading order
            lines.append("")
            lines.append(section)
            lines.append("-" * len(section))
            for fig in (f for f in self.figures.values() if f.section == section):
                if len(fig.samples) > 1:
                    spread = (f"{_num(min(fig.samples))}..{_num(max(fig.samples))} "
                              f"({100 * fig.spread:.1f}%, n={len(fig.samples)})")
                else:
                    spread = ""
                bg = ""
                if fig.other_cores is not None:
                    bg = f"bg {fig.other_cores:.2f}" + (" (!)" if fig.other_cores > BUSY_WARNING else "")
                line = (f"  {fig.label:<{width}} {_num(fig.median):>10} {fig.unit:<9} {spread:<34} "
                        f"{bg:<12}")
                if fig.note:
                    line += f" {fig.note}"
                lines.append(line.rstrip())
        return "\n".join(lines)


def _num(x: float) -> str:
    """Four significant digits, without scientific notation for ordinary magnitudes."""
    if x == 0 or not math.isfinite(x):
        return str(x)
    if 1e-3 <= abs(x) < 1e6:
        digits = max(0, 3 - int(math.floor(math.log10(abs(x)))))
        return f"{x:.{digits}f}"
    return f"{x:.3e}"


# ---------------------------------------------------------------------------------------- timing
class CpuMeter:
    """CPU time other processes used while a block ran, as average busy cores (``other_cores``).

    On a shared machine a timing taken while something else ran is not comparable with one taken on
    a quiet machine; this figure says which is which.  It is the machine's busy time from
    ``/proc/stat`` minus this process's own CPU time (children included), over the wall time, and
    None where ``/proc/stat`` cannot be read.  ``steal_cores`` is the time the hypervisor gave
    to other guests.
    """

    other_cores: float | None = None
    steal_cores: float | None = None

    def __enter__(self) -> "CpuMeter":
        self._start = (time.perf_counter(), _system_cpu(), _own_cpu())
        return self

    def __exit__(self, *exc) -> None:
        t0, sys0, own0 = self._start
        wall, sys1, own1 = time.perf_counter() - t0, _system_cpu(), _own_cpu()
        if sys0 is not None and sys1 is not None and wall > 0:
            self.other_cores = max(0.0, (sys1[0] - sys0[0] - (own1 - own0)) / wall)
            self.steal_cores = max(0.0, (sys1[1] - sys0[1]) / wall)


def _system_cpu() -> tuple[float, float] | None:
    """Busy and stolen CPU seconds of the whole machine since boot (all cores summed)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _own_cpu() -> float:
    """CPU seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Timing(list):
    """Time samples (seconds) or figures derived from them, with the background load they ran under."""

    def __init__(self, samples, other_cores: float | None = None, steal_cores: float | None = None):
        super().__init__(float(s) for s in samples)
        self.other_cores = other_cores
        self.steal_cores = steal_cores

    def derive(self, fn) -> "Timing":
        """``fn`` applied to every sample, keeping the load."""
        return Timing((fn(s) for s in self), self.other_cores, self.steal_cores)

    def rate(self, numerator: float) -> "Timing":
        """``numerator / t`` for every time sample (rates from times, sample by sample)."""
        return self.derive(lambda t: numerator / t)


def timed(fn, repeats: int, xp=np, warmup: int = 1) -> Timing:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls.

    On the GPU the queue is drained before each clock read, so a sample covers the work itself.
    """
    for _ in range(warmup):
        fn()
        backend.synchronize(xp)
    samples = []
    with CpuMeter() as meter:
        for _ in range(repeats):
            backend.synchronize(xp)
            t0 = time.perf_counter()
            fn()
            backend.synchronize(xp)
            samples.append(time.perf_counter() - t0)
    return Timing(samples, meter.other_cores, meter.steal_cores)


def _maxrss_mib() -> float:
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------- 1. machine limits
def measure_limits(report: Report, cfg: Config, xp, where: str) -> None:
    """GEMM peak and copy bandwidth on one backend (``xp`` is numpy or cupy)."""
    section = f"1. Machine limit ({where})"
    rng = np.random.default_rng(1)
    n = cfg.gemm_n
    host = (rng.standard_normal((n, n), np.float32)
            + 1j * rng.standard_normal((n, n), np.float32)).astype(np.complex64)
    a = xp.asarray(host)
    c = xp.empty_like(a)
    t = timed(lambda: xp.matmul(a, a, out=c), cfg.repeats, xp)
    blas = "cuBLAS" if xp is not np else f"NumPy, {_blas_threads()} BLAS thread(s)"
    report.add(f"peak.{where}_gemm_gflops", section, f"complex64 GEMM {n}x{n} ({blas})", "GFLOP/s",
               t.rate(8.0 * n ** 3 / 1e9))
    del a, c

    n_items = cfg.copy_mib * 2 ** 20 // 4
    src = xp.ones(n_items, np.float32)
    dst = xp.zeros(n_items, np.float32)
    gbytes = 2 * src.nbytes / 1e9   # read + write (write-allocate traffic not counted)
    t = timed(lambda: xp.copyto(dst, src), cfg.repeats, xp)
    label = f"copy bandwidth, 2 x {cfg.copy_mib} MiB" + (" (1 thread)" if xp is np else "")
    report.add(f"peak.{where}_copy_gbps", section, label, "GB/s", t.rate(gbytes),
               "read + write bytes")
    if xp is np and backend.cpu_threads() > 1:
        n_thr = backend.cpu_threads()
        edges = np.linspace(0, n_items, n_thr + 1).astype(int)
        parts = [(dst[lo:hi], src[lo:hi]) for lo, hi in zip(edges[:-1], edges[1:])]
        with ThreadPoolExecutor(n_thr) as pool:
            t = timed(lambda: list(pool.map(lambda p: np.copyto(*p), parts)), cfg.repeats)
        report.add(f"peak.{where}_copy_all_gbps", section,
                   f"copy bandwidth, 2 x {cfg.copy_mib} MiB ({n_thr} threads)", "GB/s",
                   t.rate(gbytes), "read + write bytes")


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)


# ------------------------------------------------------------------------------ 2. compute step
def make_spec(cfg: Config) -> SteeringSpec:
    """The steering setting of the configuration (first ``n_mics`` of the default array)."""
    full = default_array()
    geometry = full if cfg.n_mics == full.n_mics else ArrayGeometry(full.positions[: cfg.n_mics],
                                                                    f"acam{cfg.n_mics}")
    return SteeringSpec(geometry, CameraGrid(cfg.rows, cfg.cols), SAMPLE_FREQ, cfg.bins)


def measure_compute(report: Report, cfg: Config, device: str, peak_key: str):
    """Steering build and ``Beamformer.process`` on one block; returns what later steps reuse."""
    section = f"2. Compute step ({device}, block of {cfg.block_frames} frames)"
    bf = Beamformer(make_spec(cfg), frame_rate=FRAME_RATE, device=device)
    xp = bf.xp

    t0 = time.perf_counter()
    A = bf.steering
    backend.synchronize(xp)
    first = time.perf_counter() - t0
    report.add("compute.steering_first_s", section, "steering build, first access", "s", first,
               "includes kernel load/compile, first touch of memory")
    t = timed(lambda: steering_matrix(bf.spec, xp, bf.complex_dtype), cfg.repeats, xp)
    report.add("compute.steering_warm_s", section, "steering build, warm", "s", t)

    rng = np.random.default_rng(2)
    host_frames = rng.standard_normal((cfg.block_frames, bf.frame_len, bf.spec.geometry.n_mics),
                                      np.float32)
    frames = xp.asarray(host_frames)
    buf = xp.empty((cfg.block_frames, *bf.cube_shape_per_frame), bf.real_dtype)
    t = timed(lambda: bf.process(frames, out=buf), cfg.repeats, xp)
    n = cfg.block_frames
    flops = bf.flops_per_frame() * n
    report.add("compute.block_s", section, f"process() of {n} frames", "s", t)
    report.add("compute.ms_per_frame", section, "time per frame", "ms", t.derive(lambda s: 1e3 * s / n))
    report.add("compute.frames_per_s", section, "frames per second", "frames/s", t.rate(n))
    report.add("compute.realtime_factor", section, f"real-time factor (at {FRAME_RATE:g} fps)", "x",
               t.rate(n / bf.frame_rate))
    gflops = t.rate(flops / 1e9)
    report.add("compute.gflops", section, "achieved (flops_per_frame)", "GFLOP/s", gflops,
               f"{bf.flops_per_frame() / 1e9:.3f} GFLOP/frame")
    peak = report[peak_key].median
    report.add("compute.peak_fraction", section, "fraction of GEMM peak", "",
               gflops.derive(lambda g: g / peak), f"peak {_num(peak)} GFLOP/s")
    report.add("memory.steering_mib", "5. Memory", "steering matrix", "MiB", A.nbytes / 2 ** 20,
               f"{tuple(A.shape)} {A.dtype}")
    return bf, frames, buf


# --------------------------------------------------------------------------------- 3. baselines
def baseline_process(bf: Beamformer, frames):
    """The compute step written plainly: FFT, one batched matmul, ``abs()**2``, transpose.

    Same maths as :meth:`Beamformer.process` (window, segments of a frame, per-bin scale), no fused
    kernel and no threading of our own; NumPy's FFT on the CPU, CuPy's on the GPU.

    Returns
    -------
    array [shape=(n_frames, n_pixels, n_bins), float32]
    """
    xp = bf.xp
    spec = bf.spec
    n_frames = frames.shape[0]
    n_seg, seg = bf.n_segments, bf.window.shape[0]
    x = frames[:, :, spec.active] if len(spec.active) < frames.shape[2] else frames
    x = x[:, : n_seg * seg, :].reshape(n_frames * n_seg, seg, x.shape[2]) * bf.window[:, None]
    spectra = xp.fft.rfft(x, n=spec.nfft, axis=1)[:, : spec.n_bins, :]      # (cols, bins, mics)
    X = xp.ascontiguousarray(spectra.transpose(1, 2, 0)).astype(np.complex64, copy=False)
    Y = xp.matmul(bf.steering, X)                                         # (bins, pixels, cols)
    power = xp.abs(Y) ** 2
    power = power.reshape(spec.n_bins, -1, n_frames, n_seg).sum(axis=-1) * bf.scale[:, None, None]
    return xp.ascontiguousarray(power.transpose(2, 1, 0))


def naive_steering(spec: SteeringSpec, xp):
    """The steering matrix built with one ``exp(1j * phase)`` over all bins, in complex64."""
    gain, dtau = spec.gains_and_delays()
    omega = xp.asarray(2 * np.pi * spec.frequencies(), np.float32)
    phase = omega[:, None, None] * xp.asarray(dtau, np.float32)[None, :, :]
    return xp.asarray(gain, np.float32)[None, :, :] * xp.exp(phase * np.complex64(1j))


def measure_baselines(report: Report, cfg: Config, bf: Beamformer, frames, buf) -> None:
    xp = bf.xp
    lib = "NumPy" if xp is np else "CuPy"
    section = f"3. Baselines (plain {lib}, same frames)"
    n = cfg.block_frames
    ours = report["compute.block_s"].median

    t = timed(lambda: baseline_process(bf, frames), cfg.heavy_repeats, xp)
    report.add("baseline.block_s", section, f"plain {lib}: FFT + matmul + abs^2 + T", "s", t)
    report.add("baseline.realtime_factor", section, "plain: real-time factor", "x",
               t.rate(n / bf.frame_rate))
    report.add("baseline.gflops", section, "plain: achieved", "GFLOP/s",
               t.rate(bf.flops_per_frame() * n / 1e9))
    report.add("baseline.time_ratio", section, "time ours / plain", "", ours / statistics.median(t),
               f"speed-up of ours {statistics.median(t) / ours:.2f}x")

    # agreement: ours and the plain version must compute the same cube
    expected = baseline_process(bf, frames)
    got = buf.reshape(expected.shape)
    rel = float(xp.max(xp.abs(got - expected)) / xp.max(xp.abs(expected)))
    report.add("baseline.max_rel_diff", section, "plain vs ours, max |diff| / max", "", rel,
               "agreement check")
    del expected, got

    # the batched product alone, at the shape of the compute step (BLAS with all its threads)
    A = bf.steering
    X = xp.asarray(np.random.default_rng(3).standard_normal(
        (A.shape[0], A.shape[2], n * bf.n_segments), np.float32).astype(np.complex64))
    Y = xp.empty((A.shape[0], A.shape[1], X.shape[2]), np.complex64)
    t = timed(lambda: xp.matmul(A, X, out=Y), cfg.heavy_repeats, xp)
    shape = f"{A.shape[0]} x ({A.shape[1]}x{A.shape[2]} @ {A.shape[2]}x{X.shape[2]})"
    report.add("baseline.matmul_gflops", section, f"batched matmul alone, {shape}", "GFLOP/s",
               t.rate(bf.flops_per_frame() * n / 1e9), "attainable at this shape")
    del X, Y

    if cfg.naive_steering:
        t = timed(lambda: naive_steering(bf.spec, xp), cfg.heavy_repeats, xp)
        warm = report["compute.steering_warm_s"].median
        report.add("baseline.naive_steering_s", section, "steering build, naive exp(1j*phase)", "s", t,
                   f"speed-up of ours (warm) {statistics.median(t) / warm:.1f}x")
        naive = naive_steering(bf.spec, xp)
        diff = float(xp.max(xp.abs(naive - A)) / xp.max(xp.abs(A)))
        report.add("baseline.naive_steering_max_rel_diff", section,
                   "naive vs ours steering, max |diff| / max", "", diff, "agreement check")
        del naive


# ---------------------------------------------------------------------------------- 4. end to end
def measure_end_to_end(report: Report, cfg: Config, device: str, workdir: Path) -> None:
    section = f"4. End to end ({cfg.seconds:g} s recording, {device})"
    n_mics = cfg.n_mics
    positions = default_array().positions[:n_mics]
    rng = np.random.default_rng(4)
    data = rng.standard_normal((int(round(cfg.seconds * SAMPLE_FREQ)), n_mics), np.float32)
    raw = workdir / "raw.h5"
    t0 = time.perf_counter()
    write_raw(raw, data, SAMPLE_FREQ, positions, FRAME_RATE)
    report.add("e2e.write_raw_s", section, f"write_raw ({data.nbytes / 2 ** 20:.0f} MiB, not timed below)",
               "s", time.perf_counter() - t0)
    del data

    settings = RunSettings(bins=cfg.bins, rows=cfg.rows, cols=cfg.cols, device=device)
    cube = workdir / "cube.h5"
    samples, run = [], None
    with CpuMeter() as meter:
        for _ in range(cfg.heavy_repeats):
            cube.unlink(missing_ok=True)
            t0 = time.perf_counter()
            run = beamform_file(raw, cube, settings)
            samples.append(time.perf_counter() - t0)
    samples = Timing(samples, meter.other_cores, meter.steal_cores)
    cube_mib = cube.stat().st_size / 2 ** 20
    cube.unlink()
    audio = run.seconds_of_audio
    report.add("e2e.seconds", section, f"beamform_file: {run.n_frames} frames -> {_num(cube_mib)} MiB cube",
               "s", samples, "no warm-up; each run writes a new file")
    report.add("e2e.realtime_factor", section, "beamform_file: real-time factor", "x",
               samples.rate(audio))
    report.add("e2e.first_run_s", section, "beamform_file: first run alone", "s", samples[0],
               "pays the first touch of fresh memory")
    per_frame = report["compute.block_s"].median / cfg.block_frames
    compute = run.n_frames * per_frame
    e2e = statistics.median(samples)
    report.add("e2e.compute_estimate_s", section, "compute-only estimate (from step 2)", "s", compute)
    report.add("e2e.io_overhead_s", section, "I/O and other overhead (e2e - compute)", "s",
               e2e - compute, f"steering build (warm) {_num(report['compute.steering_warm_s'].median)} s "
               "is part of it")
    report.add("e2e.io_share", section, "I/O and overhead share of e2e", "", (e2e - compute) / e2e)
    report.add("memory.maxrss_after_e2e_mib", "5. Memory", "peak RSS of this process after e2e", "MiB",
               _maxrss_mib(), "includes the benchmark's own buffers")

    # the whole command, in a fresh interpreter each time (start-up, imports, JIT cache load,
    # steering build included); the first run is also reported on its own
    cube_cli = workdir / "cube_cli.h5"
    cmd = [sys.executable, "-m", "acam.cli", "beamform", "run", str(raw), "--bins", str(cfg.bins),
           "--rows", str(cfg.rows), "--cols", str(cfg.cols), "--device", device,
           "-o", str(cube_cli), "--no-progress"]
    walls, peak_kib = [], 0
    with CpuMeter() as meter:
        for _ in range(cfg.heavy_repeats):
            wall, rc, peak, log = run_watched(cmd, workdir / "cli.log")
            if rc != 0:
                raise RuntimeError(f"{shlex.join(cmd)} failed ({rc}):\n{log}")
            cube_cli.unlink()
            walls.append(wall)
            peak_kib = max(peak_kib, peak or 0)
    wall = Timing(walls, meter.other_cores, meter.steal_cores)
    report.add("cli.first_wall_s", section, "`beamform run` command, first run alone", "s", walls[0],
               "pays the first touch of fresh memory")
    report.add("cli.wall_s", section, "`beamform run` command, wall time", "s", wall,
               "fresh process each run; includes Python start-up")
    report.add("cli.realtime_factor", section, "`beamform run`: real-time factor", "x", wall.rate(audio))
    if peak_kib:
        report.add("memory.cli_peak_rss_mib", "5. Memory", "peak RSS of the `beamform run` process",
                   "MiB", peak_kib / 1024, "VmHWM, polled every 20 ms")
    t = timed(lambda: subprocess.run([sys.executable, "-m", "acam.cli", "--version"],
                                     capture_output=True, check=True), 1, warmup=0)
    report.add("cli.startup_s", section, "`acam --version` (start-up + import)", "s", t)


def run_watched(cmd: list[str], log: Path, poll_s: float = 0.02) -> tuple[float, int, int, str]:
    """Run ``cmd`` (stdout and stderr to ``log``), polling its peak resident set size.

    Returns ``(wall seconds, exit status, peak RSS in KiB or 0, log text)``.  The peak is the
    child's own ``VmHWM`` from ``/proc``: ``getrusage(RUSAGE_CHILDREN)`` cannot be used, because
    Linux carries the parent's high-water mark into a child that it spawns.
    """
    peak = 0
    with open(log, "w+b") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except (OSError, ValueError, IndexError):  # exiting, or no /proc
                pass
            time.sleep(poll_s)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode(errors="replace")
    return wall, proc.returncode, peak, text


# --------------------------------------------------------------------------------------- goals
def evaluate_goals(report: Report, cfg: Config) -> list[dict]:
    """The project's goals against the measured medians (not evaluated in smoke mode)."""
    smoke = cfg.mode == "smoke"
    e2e_note = "" if cfg.seconds == GOAL_E2E_SECONDS else f" (measured on {cfg.seconds:g} s)"
    fraction_met = GOAL_PEAK_FRACTION - GOAL_PEAK_FRACTION_TOLERANCE
    goals = [
        ("compute step >= 10x real time", f">= {GOAL_COMPUTE_RTF:g}x",
         report["compute.realtime_factor"].median, GOAL_COMPUTE_RTF),
        ("compute step about 75% of GEMM peak",
         f"~{100 * GOAL_PEAK_FRACTION:.0f}% (met from {100 * fraction_met:.0f}%)",
         report["compute.peak_fraction"].median, fraction_met),
        (f"end to end >= 8x real time on a 30 s recording{e2e_note}", f">= {GOAL_E2E_RTF:g}x",
         report["e2e.realtime_factor"].median, GOAL_E2E_RTF),
        (f"whole `beamform run` command >= 8x real time{e2e_note}", f">= {GOAL_E2E_RTF:g}x",
         report["cli.realtime_factor"].median, GOAL_E2E_RTF),
    ]
    return [{"goal": name, "target": target, "measured": value,
             "met": None if smoke else bool(value >= threshold)}
            for name, target, value, threshold in goals]


def goals_table(goals: list[dict]) -> str:
    width = max(len(g["goal"]) for g in goals)
    twidth = max(len(g["target"]) for g in goals)
    lines = ["", "Goals", "-----"]
    for g in goals:
        verdict = "not evaluated (smoke)" if g["met"] is None else ("MET" if g["met"] else "NOT MET")
        lines.append(f"  {g['goal']:<{width}}  target {g['target']:<{twidth}}  "
                     f"measured {_num(g['measured']):>8}  {verdict}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- machine
def machine_info(device: str) -> dict:
    """What the figures were measured on (call last: every library is loaded by then)."""
    import h5py
    import numba
    import scipy
    import threadpoolctl

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpuinfo_field("model name"),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": backend.cpu_threads(),
        "memory_gib": _meminfo_gib(),
        "versions": {"acam": acam.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "numba": numba.__version__, "h5py": h5py.__version__,
                     "threadpoolctl": threadpoolctl.__version__},
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "threadpools": threadpoolctl.threadpool_info(),
        "device": device,
        "git_commit": _git_commit(),
    }
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel Numba code ran
        info["numba_threading_layer"] = None
    if device == "cuda":
        cp = backend.xp_for("cuda")
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        info["gpu"] = {"name": props["name"].decode(errors="replace"),
                       "memory_gib": props["totalGlobalMem"] / 2 ** 30,
                       "cuda_runtime": cp.cuda.runtime.runtimeGetVersion()}
        info["versions"]["cupy"] = cp.__version__
    return info


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _meminfo_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    """The checked-out commit (read-only query), with ``+dirty`` when the tree has changes."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=PACKAGE_DIR, capture_output=True,
                             text=True, check=True).stdout.strip()
        if Path(top).resolve() != PACKAGE_DIR:  # an installed copy inside some other repository
            return None
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


# ---------------------------------------------------------------------------------------- main
def run(cfg: Config, device: str) -> tuple[Report, list[dict]]:
    """All measurements of one configuration on one device."""
    report = Report()
    measure_limits(report, cfg, np, "cpu")
    if device == "cuda":
        measure_limits(report, cfg, backend.xp_for("cuda"), "gpu")
    peak_key = "peak.gpu_gemm_gflops" if device == "cuda" else "peak.cpu_gemm_gflops"
    bf, frames, buf = measure_compute(report, cfg, device, peak_key)
    # end to end before the baselines, so that the peak RSS read after it does not hold the
    # baselines' large temporaries (the naive steering build alone needs ~2 GB)
    with tempfile.TemporaryDirectory(prefix="acam-bench-") as tmp:
        measure_end_to_end(report, cfg, device, Path(tmp))
    measure_baselines(report, cfg, bf, frames, buf)
    del bf, frames, buf
    report.add("memory.maxrss_end_mib", "5. Memory", "peak RSS of this process, end of run", "MiB",
               _maxrss_mib(), "includes baselines' temporaries")
    return report, evaluate_goals(report, cfg)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m acam.benchmarks.bench_beamform",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny configuration, a few seconds (for tests)")
    p.add_argument("--seconds", type=float, default=None,
                   help="length of the synthetic recording (default 30; 1 with --smoke)")
    p.add_argument("--json", metavar="OUT.json", help="write every figure and the machine description")
    p.add_argument("--device", choices=backend.DEVICES, default="auto",
                   help="auto uses the GPU when CuPy sees one")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per figure (default 5, 3 for the expensive ones)")
    p.add_argument("--peers", action="store_true",
                   help="also time Acoular and pyroomacoustics on the same frames and grid")
    p.add_argument("--sweep", default="", metavar="LIST",
                   help="comma-separated sweeps: mics,grid,bins,frames (compute step), length (whole command)")
    p.add_argument("--tolerances", default="", metavar="LIST",
                   help="low-rank steering side by side with the exact path, e.g. 1e-2,1e-3,1e-4")
    p.add_argument("--scaling", default="", metavar="LIST",
                   help="files/s on local Dask clusters of these worker counts, e.g. 1,2,4 (benchmarks.scaling)")
    p.add_argument("--steps", action="store_true",
                   help="also time MFCC, one dataset sequence, training steps, cached vs live distillation")
    args = p.parse_args(argv)
    from .sweeps import SWEEPS

    bad = [x for x in args.sweep.split(",") if x and x not in SWEEPS and x != "length"]
    if bad:
        p.error(f"unknown sweep(s) {bad}; choose from {', '.join(SWEEPS)}")
    if args.seconds is not None and not args.seconds > 0:
        p.error("--seconds must be positive")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        device = backend.resolve_device(args.device)
    except AcamError as exc:
        print(f"bench_beamform: {exc}", file=sys.stderr)
        return 2
    cfg = make_config(args.smoke, args.seconds, args.repeats)
    command = shlex.join(["python", "-m", "acam.benchmarks.bench_beamform", *argv])
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"{command}\n{started.isoformat(timespec='seconds')}  mode={cfg.mode}  device={device}  "
          f"{cfg.n_mics} mics, {cfg.rows}x{cfg.cols} pixels, {cfg.bins} bins", flush=True)

    with CpuMeter() as meter:
        time.sleep(1.0)
    if meter.other_cores is not None and meter.other_cores > BUSY_WARNING:
        print(f"warning: other processes keep {meter.other_cores:.2f} CPU cores busy; "
              "timings will be lower and noisier than on a quiet machine", flush=True)
    with CpuMeter() as whole:
        report, goals = run(cfg, device)
    machine = machine_info(device)
    machine["background_cpu_cores_before"] = meter.other_cores
    machine["background_cpu_cores_during"] = whole.other_cores
    machine["steal_cpu_cores_during"] = whole.steal_cores

    gpu = f", GPU {machine['gpu']['name']}" if "gpu" in machine else ""
    print(f"\nmachine: {machine['cpu_model']}, {machine['usable_cpus']} usable core(s), "
          f"{machine['memory_gib']:.1f} GiB{gpu}")
    if whole.other_cores is not None:
        print(f"background load: {whole.other_cores:.2f} cores busy with other processes during the "
              f"run ({meter.other_cores:.2f} just before), hypervisor steal {whole.steal_cores:.2f}")
    print(report.table())
    print(goals_table(goals))
    extra = run_extras(args, cfg, device, report)
    if args.json:
        doc = {
            "schema": 1,
            "command": command,
            "executable": sys.executable,
            "date": started.isoformat(timespec="seconds"),
            "duration_s": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
            "mode": cfg.mode,
            "device": device,
            "config": dataclasses.asdict(cfg),
            "machine": machine,
            "figures": {k: f.as_json() for k, f in report.figures.items()},
            "goals": goals,
            **extra,
        }
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {out}")
    return 0


def measure_lowrank(cfg: Config, device: str, tolerances: list[float], report: Report) -> list[dict]:
    """Low-rank steering against the exact path on a pyroomacoustics recording of two sources:
    real-time factor of the compute step, operations saved, error on pixels within 30 dB of each
    map's peak (relative to the peak), and whether any peak moved (bins above 1.5 kHz)."""
    from acam.beamform.simulate import Scene, SourceSpec, simulate

    n_frames = cfg.block_frames
    geometry = ArrayGeometry(default_array().positions[:cfg.n_mics])
    rec = simulate(Scene((SourceSpec((0.4, 0.2, 2.5), "noise"), SourceSpec((-0.6, -0.3, 3.0), "chirp")),
                         duration=n_frames / FRAME_RATE + 0.1), geometry)
    frames = rec["time_data"][: n_frames * 1024].reshape(n_frames, 1024, -1)
    spec = SteeringSpec(geometry, CameraGrid(cfg.rows, cfg.cols), SAMPLE_FREQ, cfg.bins)
    exact = Beamformer(spec, FRAME_RATE, device=device)
    xp = exact.xp
    x = xp.asarray(frames)
    ref_out = xp.empty((n_frames, cfg.rows, cfg.cols, cfg.bins), np.float32)
    t_exact = timed(lambda: exact.process(x, out=ref_out), cfg.heavy_repeats, xp)
    ref = backend.to_host(ref_out).astype(np.float64)
    peak = ref.max(axis=(1, 2), keepdims=True)
    near = ref >= peak * 1e-3
    k0 = int(np.ceil(1500 / (SAMPLE_FREQ / spec.nfft)))
    print("\n9. Low-rank steering against the exact path (pyroomacoustics recording, two sources)\n"
          "------------------------------------------------------------------------------------")
    rt_exact = n_frames / FRAME_RATE / statistics.median(t_exact)
    print(f"  exact          {rt_exact:8.2f}x real time")
    rows = [{"tolerance": 0.0, "realtime_factor": rt_exact, "ops_saved": 0.0, "max_error": 0.0,
             "peaks_moved": 0, "mean_rank": float(len(spec.active))}]
    for tol in tolerances:
        lr = Beamformer(spec, FRAME_RATE, device=device, tolerance=tol)
        t0 = time.perf_counter()
        lr.prepare()
        t_fact = time.perf_counter() - t0
        out = xp.empty_like(ref_out)
        t = timed(lambda: lr.process(x, out=out), cfg.heavy_repeats, xp)
        got = backend.to_host(out).astype(np.float64)
        err = float((np.abs(got - ref) / peak)[near].max())
        moved = int((ref[..., k0:].reshape(n_frames, -1, cfg.bins - k0).argmax(1)
                     != got[..., k0:].reshape(n_frames, -1, cfg.bins - k0).argmax(1)).sum())
        saved = 1 - lr.flops_per_frame() / exact.flops_per_frame()
        rt = n_frames / FRAME_RATE / statistics.median(t)
        rows.append({"tolerance": tol, "realtime_factor": rt, "ops_saved": saved, "max_error": err,
                     "peaks_moved": moved, "mean_rank": float(lr.lowrank.ranks.mean()),
                     "factorise_s": t_fact, "speedup_vs_exact": rt / rt_exact})
        print(f"  tol {tol:8.0e}   {rt:8.2f}x real time ({rt / rt_exact:.2f}x exact)   mean rank "
              f"{lr.lowrank.ranks.mean():6.1f}   ops saved {100 * saved:5.1f}%   max error (within 30 dB, "
              f"re peak) {err:.2e}   peaks moved {moved}   factorise {t_fact:.1f} s (cached after)")
    return rows


def run_extras(args, cfg: Config, device: str, report: Report) -> dict:
    """Peers, sweeps and the other heavy steps, printed and returned for the JSON document."""
    out = {}
    smoke = cfg.mode == "smoke"
    ours = report["compute.ms_per_frame"].median / 1000.0
    if args.peers:
        from . import peers

        rng = np.random.default_rng(5)
        frames = rng.standard_normal((3, 1024, cfg.n_mics))
        res = peers.measure(frames, default_array().positions[:cfg.n_mics], CameraGrid(cfg.rows, cfg.cols),
                            SAMPLE_FREQ, cfg.bins, repeats=1 if smoke else 2, pra_bins=2 if smoke else 8)
        print("\n6. Peers (seconds per frame, same frames and grid)\n--------------------------------------------------")
        print(f"  acam (this run, compute step)              {ours:10.4f} s/frame  {1 / (FRAME_RATE * ours):10.3f}x real time")
        for name, r in res.items():
            if r is None:
                print(f"  {name:42s} not installed (pip install acoular)")
                continue
            med = statistics.median(r["seconds"])
            note = f"  timed on {r['bins_timed']} bins, extrapolated to {cfg.bins}" if r["extrapolated"] else ""
            r.update({"median": med, "realtime_factor": 1 / (FRAME_RATE * med), "acam_speedup": med / ours})
            print(f"  {name:42s} {med:10.4f} s/frame  {1 / (FRAME_RATE * med):10.5f}x real time  "
                  f"acam is {med / ours:,.0f}x faster{note}")
        out["peers"] = {"acam_seconds_per_frame": ours, **res}
    if args.sweep:
        from .sweeps import sweep

        out["sweeps"] = {}
        print("\n7. Sweeps of the compute step\n----------------------------")
        for name in [x for x in args.sweep.split(",") if x]:
            if name == "length":
                from .sweeps import sweep_length

                r = sweep_length(smoke=smoke, device=device)
                out["sweeps"][name] = r
                print(f"  length  slope {r['slope']:.2f} (expected 1)   " + ", ".join(
                    f"{row['value']:g} s: {row['median']:.2f} s, {row['peak_rss_mib']:.0f} MiB peak" for row in r["rows"]))
                continue
            r = sweep(name, repeats=1 if smoke else 3, smoke=smoke, device=device)
            out["sweeps"][name] = r
            cells = ", ".join(f"{row['value']}: {row['median']:.4f} s" for row in r["rows"])
            print(f"  {name:7s} slope {r['slope']:.2f} (expected {r['expected_slope']:.0f})   {cells}")
    if args.tolerances:
        out["lowrank"] = measure_lowrank(cfg, device, [float(t) for t in args.tolerances.split(",") if t], report)
    if args.steps:
        from . import steps

        print("\n8. Other heavy steps\n--------------------")
        mf = steps.mfcc_per_frame(smoke=smoke)
        print(f"  MFCC compression (CPU)                     {mf['seconds_per_frame'] * 1000:8.3f} ms/frame")
        ds = steps.dataset_sequence("tiny")
        print("  dataset sequence (tiny preset, 2 s)        " + ", ".join(
            f"{k} {v:.2f} s" for k, v in ds.items() if k.startswith("scenario")))
        tr = steps.training_steps(smoke=smoke)
        for name, r in tr.items():
            est = ", ".join(f"{k} {v / 60:.1f} min" for k, v in r["epoch_estimate_s"].items())
            print(f"  training step {name:12s} batch {r['batch']:2d}     {r['seconds_per_step']:8.3f} s   "
                  f"epoch estimate: {est}")
        di = steps.distillation_cached_vs_live(smoke=smoke)
        print(f"  distillation step, cached soft labels      {di['cached']:8.3f} s")
        print(f"  distillation step, live DualCamNet teacher {di['live']:8.3f} s   (cache {di['speedup']:.1f}x faster)")
        out["steps"] = {"mfcc": mf, "dataset_sequence": ds, "training": tr, "distillation": di}
    if args.scaling:
        from . import scaling

        print("\n9. Scale-out (local Dask workers)\n---------------------------------")
        r = scaling.measure(tuple(int(w) for w in args.scaling.split(",") if w), smoke=smoke)
        print(scaling.table(r))
        out["scaling"] = r
    return out


if __name__ == "__main__":
    sys.exit(main())
