"""Throughput benchmark of the beamformer, against the machine's limits and plain-NumPy baselines.

Run as ``acam bench beamform [--smoke] [--seconds 30] [-o OUT.json] [--device cpu|cuda|auto]
[--tolerances 1e-3] [--precisions bf16,bf16x3] [--peers] [--sweep ...]``: the command line parses the
options and calls :func:`run_beamform` with keyword arguments (no argument parsing here).  The
modules of the benchmark: :mod:`.measure` (figures, timing, background load), :mod:`.machine`,
:mod:`.compute` (limits, compute step, baselines), :mod:`.end_to_end`, :mod:`.modes` (low-rank
and reduced precision against the exact path), :mod:`.goals`, and the extras :mod:`.peers`,
:mod:`.sweeps`, :mod:`.steps`, :mod:`.scaling`.

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
9. Low-rank steering (``tolerances``): compute step and error against the exact path; the whole
   command with an empty cache (factorising) and warm, against the exact command.
10. Precision (``precisions``): bf16 and bf16x3 side by side with single: speed against the exact
   complex64 path and error against the float64 path in the same run, MFCCs of the cubes.

Step 4 runs before step 3, so that the peak memory read after it does not hold the baselines'
temporaries; the table is printed in numbered order.  Next to every timing, ``bg`` gives the CPU
cores that other processes kept busy meanwhile (from ``/proc/stat``): on a shared machine, figures
with a high ``bg`` are not comparable with a quiet run.

``smoke`` runs a tiny configuration in a few seconds (used by ``tests/test_bench_smoke.py``); its
figures say nothing about performance and no goal is evaluated.  ``output`` writes every figure
(samples included), the configuration, the machine description and the command line.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from acam.beamform import CameraGrid, default_array
from acam.beamform import backend
from acam.beamform.sensor import FRAME_RATE, SAMPLE_FREQ
from acam.core.errors import AcamError
from acam.core.checks import number
from acam.core.safeio import check_output, write_text

from .compute import Config, make_config, measure_baselines, measure_compute, measure_limits
from .end_to_end import measure_end_to_end
from .goals import evaluate_goals, goals_table
from .machine import blas_warning, machine_info
from .measure import BUSY_WARNING, CpuMeter, Report, _maxrss_mib


def run(cfg: Config, device: str, tolerances=()) -> Report:
    """Sections 1-5 of one configuration on one device (and the low-rank whole-command runs)."""
    report = Report()
    measure_limits(report, cfg, np, "cpu")
    if device == "cuda":
        measure_limits(report, cfg, backend.xp_for("cuda"), "gpu")
    peak_key = "peak.gpu_gemm_gflops" if device == "cuda" else "peak.cpu_gemm_gflops"
    bf, frames, buf = measure_compute(report, cfg, device, peak_key)
    # end to end before the baselines, so that the peak RSS read after it does not hold the
    # baselines' large temporaries (the naive steering build alone needs ~2 GB)
    with tempfile.TemporaryDirectory(prefix="acam-bench-") as tmp:
        measure_end_to_end(report, cfg, device, Path(tmp), tolerances)
    measure_baselines(report, cfg, bf, frames, buf)
    del bf, frames, buf
    report.add("memory.maxrss_end_mib", "5. Memory", "peak RSS of this process, end of run", "MiB",
               _maxrss_mib(), "includes baselines' temporaries")
    return report


def run_beamform(*, smoke: bool = False, seconds: float | None = None, output: str | None = None,
                 device: str = "auto", repeats: int | None = None, peers: bool = False, sweeps=(),
                 tolerances=(), precisions=(), steps: bool = False, scaling=(),
                 command: str = "acam bench beamform") -> dict:
    """Every figure of one run, printed as tables and returned (and written to ``output``) as JSON.

    ``sweeps``: names from :data:`.sweeps.SWEEPS` and ``length``; ``tolerances``: low-rank settings
    side by side with the exact path (compute step and whole command); ``precisions``: ``bf16``,
    ``bf16x3`` against ``single`` and float64; ``scaling``: local Dask worker counts.
    """
    _check_arguments(seconds, repeats, sweeps, tolerances, output)
    device = backend.resolve_device(device)
    cfg = make_config(smoke, seconds, repeats, device)
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"{command}\n{started.isoformat(timespec='seconds')}  mode={cfg.mode}  device={device}  "
          f"{cfg.n_mics} mics, {cfg.rows}x{cfg.cols} pixels, {cfg.bins} bins", flush=True)
    with CpuMeter() as meter:
        time.sleep(1.0)
    if meter.other_cores is not None and meter.other_cores > BUSY_WARNING:
        print(f"warning: other processes keep {meter.other_cores:.2f} CPU cores busy; "
              "timings will be lower and noisier than on a quiet machine", flush=True)
    with CpuMeter() as whole:
        report = run(cfg, device, tuple(tolerances))
        machine = machine_info(device)
        warn = blas_warning(machine)
        if warn:
            print(warn, flush=True)
        print(machine_line(machine))
        print(report.table())
        extra = run_extras(cfg, device, report, peers=peers, sweeps=sweeps, tolerances=tolerances,
                           precisions=precisions, steps=steps, scaling=scaling)
    machine["background_cpu_cores_before"] = meter.other_cores
    machine["background_cpu_cores_during"] = whole.other_cores
    machine["steal_cpu_cores_during"] = whole.steal_cores
    if whole.other_cores is not None:
        print(f"\nbackground load: {whole.other_cores:.2f} cores busy with other processes during the "
              f"run ({meter.other_cores:.2f} just before), hypervisor steal {whole.steal_cores:.2f}")
    goals = evaluate_goals(report, cfg, extra.get("modes"), machine["matrix_features"]["bf16_unit"])
    print(goals_table(goals))
    doc = {
        "schema": 1, "command": command, "executable": sys.executable,
        "date": started.isoformat(timespec="seconds"),
        "duration_s": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
        "mode": cfg.mode, "device": device, "config": dataclasses.asdict(cfg), "machine": machine,
        "figures": {k: f.as_json() for k, f in report.figures.items()}, "goals": goals, **extra,
    }
    if output:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, json.dumps(doc, indent=2, default=str) + "\n")
        print(f"\nwrote {out}")
    return doc


def _check_arguments(seconds, repeats, sweeps, tolerances, output) -> None:
    """Every argument of :func:`run_beamform` checked before minutes of figures are spent."""
    from .sweeps import SWEEPS

    bad = [x for x in sweeps if x not in SWEEPS and x != "length"]
    if bad:
        raise AcamError(f"sweeps: unknown {bad}; choose from {', '.join([*SWEEPS, 'length'])}")
    if seconds is not None and not seconds > 0:
        raise AcamError(f"seconds={seconds} must be positive")
    if repeats is not None and repeats < 1:
        raise AcamError(f"repeats={repeats} must be at least 1")
    for t in tolerances:
        number("tolerance", t, lo=0, hi=1, lo_open=True, hi_open=True)
    if output:
        check_output(output)


def machine_line(machine: dict) -> str:
    """The machine in one printed line: CPU, cores, memory, GPU, bfloat16 unit, BLAS kernels."""
    gpu = f", GPU {machine['gpu']['name']}" if "gpu" in machine else ""
    feats = machine["matrix_features"]
    return (f"\nmachine: {machine['cpu_model']} (vendor {machine['cpu_vendor']}, family {machine['cpu_family']}, "
            f"model {machine['cpu_model_number']}), {machine['usable_cpus']} usable core(s), "
            f"{machine['memory_gib']:.1f} GiB{gpu}; bfloat16 unit: {feats['bf16_unit'] or 'none'} "
            f"(amx_bf16 {feats['amx_bf16']}, avx512_bf16 {feats['avx512_bf16']}); OpenBLAS kernels "
            f"{machine['openblas_kernels']}")


def run_extras(cfg: Config, device: str, report: Report, *, peers=False, sweeps=(), tolerances=(),
               precisions=(), steps=False, scaling=()) -> dict:
    """Peers, sweeps, the other modes and the other heavy steps, printed and returned for the JSON."""
    out = {}
    smoke = cfg.mode == "smoke"
    if peers:
        out["peers"] = _peers(cfg, report, smoke)
    if sweeps:
        out["sweeps"] = _sweeps(sweeps, smoke, device)
    if tolerances:
        from .modes import measure_lowrank

        out["lowrank"] = measure_lowrank(cfg, device, [float(t) for t in tolerances], report)
    if precisions:
        from .modes import measure_precisions

        out["modes"] = measure_precisions(cfg, device, list(precisions), report)
    if steps:
        out["steps"] = _steps(smoke)
    if scaling:
        from . import scaling as sc

        print("\n11. Scale-out (local Dask workers)\n----------------------------------")
        r = sc.measure(tuple(int(w) for w in scaling), smoke=smoke)
        print(sc.table(r))
        out["scaling"] = r
    return out


def _peers(cfg: Config, report: Report, smoke: bool) -> dict:
    from . import peers

    ours = report["compute.ms_per_frame"].median / 1000.0
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
    return {"acam_seconds_per_frame": ours, **res}


def _sweeps(names, smoke: bool, device: str) -> dict:
    from .sweeps import sweep, sweep_length

    out = {}
    print("\n7. Sweeps of the compute step\n----------------------------")
    for name in names:
        if name == "length":
            r = sweep_length(smoke=smoke, device=device)
            print(f"  length  slope {r['slope']:.2f} (expected 1)   " + ", ".join(
                f"{row['value']:g} s: {row['median']:.2f} s, {row['peak_rss_mib']:.0f} MiB peak" for row in r["rows"]))
        else:
            r = sweep(name, repeats=1 if smoke else 3, smoke=smoke, device=device)
            cells = ", ".join(f"{row['value']}: {row['median']:.4f} s" for row in r["rows"])
            print(f"  {name:7s} slope {r['slope']:.2f} (expected {r['expected_slope']:.0f})   {cells}")
        out[name] = r
    return out


def _steps(smoke: bool) -> dict:
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
    return {"mfcc": mf, "dataset_sequence": ds, "training": tr, "distillation": di}
