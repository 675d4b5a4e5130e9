"""The configuration of a run, the machine's limits (GEMM peak, copy bandwidth), the compute step
(``Beamformer.process`` on one block) and the plain-NumPy baselines of the same maths.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from acam.beamform import Beamformer, CameraGrid, SteeringSpec, default_array, steering_matrix
from acam.beamform import backend
from acam.beamform.geometry import ArrayGeometry
from acam.beamform.sensor import FRAME_RATE, SAMPLE_FREQ

from .machine import _blas_threads
from .measure import Report, _num, timed

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
    gemm_n: int          # GEMM peak on gemm_n x gemm_n complex64 matrices (CPU)
    gpu_gemm_n: int      # the same on the GPU (8192: ~9 TFLOP, long enough for cuBLAS's peak)
    copy_mib: int        # size of each array of the bandwidth copy
    repeats: int         # timed runs of the cheap measurements
    heavy_repeats: int   # timed runs of the expensive ones (baselines, end to end)
    naive_steering: bool


def make_config(smoke: bool, seconds: float | None, repeats: int | None, device: str = "cpu") -> Config:
    if smoke:
        cfg = Config("smoke", n_mics=16, rows=6, cols=8, bins=32, block_frames=4, seconds=1.0,
                     gemm_n=256, gpu_gemm_n=256, copy_mib=16, repeats=3, heavy_repeats=3, naive_steering=False)
    else:
        cfg = Config("full", n_mics=128, rows=36, cols=48, bins=512, block_frames=128, seconds=30.0,
                     gemm_n=2048, gpu_gemm_n=8192, copy_mib=256, repeats=5, heavy_repeats=3, naive_steering=True)
    changes = {}
    if device == "cuda" and not smoke:
        changes.update(block_frames=256)      # the pipeline's block on the GPU (RunSettings)
    if seconds is not None:
        changes["seconds"] = float(seconds)
    if repeats is not None:
        changes["repeats"] = repeats
        changes["heavy_repeats"] = repeats
    return dataclasses.replace(cfg, **changes)


def measure_limits(report: Report, cfg: Config, xp, where: str) -> None:
    """GEMM peak and copy bandwidth on one backend (``xp`` is numpy or cupy)."""
    section = f"1. Machine limit ({where})"
    rng = np.random.default_rng(1)
    n = cfg.gemm_n if xp is np else cfg.gpu_gemm_n
    host = (rng.standard_normal((n, n), np.float32)
            + 1j * rng.standard_normal((n, n), np.float32)).astype(np.complex64)
    a = xp.asarray(host)
    c = xp.empty_like(a)
    t = timed(lambda: xp.matmul(a, a, out=c), cfg.repeats, xp)
    blas = "cuBLAS" if xp is not np else f"NumPy, {_blas_threads()} BLAS thread(s)"
    report.add(f"peak.{where}_gemm_gflops", section, f"complex64 GEMM {n}x{n} ({blas})", "GFLOP/s",
               t.rate(8.0 * n ** 3 / 1e9))
    a = c = None      # free the buffers (the timed lambda still names them)

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
    X = Y = None

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
