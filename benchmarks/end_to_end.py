"""End to end: ``beamform_file`` on a synthetic recording and the whole ``beamform run`` command in
fresh processes (start-up, imports, set-up and first touch of memory included).
"""

from __future__ import annotations

import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from acam.beamform import default_array, write_raw
from acam.beamform.pipeline import RunSettings, beamform_file

from acam.beamform.sensor import FRAME_RATE, SAMPLE_FREQ

from .compute import Config
from .measure import CpuMeter, Report, Timing, _maxrss_mib, _num, run_watched, timed

def measure_end_to_end(report: Report, cfg: Config, device: str, workdir: Path, tolerances=()) -> None:
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
    cmd = _command(raw, cfg, device, workdir / "cube_cli.h5")
    wall, peak_kib, logs = _run_command(cmd, cfg.heavy_repeats, workdir)
    report.add("cli.first_wall_s", section, "`beamform run` command, first run alone", "s", wall[0],
               "pays the first touch of fresh memory")
    report.add("cli.wall_s", section, "`beamform run` command, wall time", "s", wall,
               "fresh process each run; includes Python start-up")
    report.add("cli.realtime_factor", section, "`beamform run`: real-time factor", "x", wall.rate(audio))
    split = [_printed_split(log) for log in logs]
    if all(split):
        report.add("cli.setup_s", section, "  of which set-up (open, steering, allocation, first read)", "s",
                   [x[1] for x in split], "as the command prints it")
        report.add("cli.compute_s", section, "  of which beamforming (process() of every block)", "s",
                   [x[0] for x in split], "includes the first touch of the cube buffers")
    if peak_kib:
        report.add("memory.cli_peak_rss_mib", "5. Memory", "peak RSS of the `beamform run` process",
                   "MiB", peak_kib / 1024, "VmHWM, polled every 20 ms")
    t = timed(lambda: subprocess.run([sys.executable, "-m", "acam.cli", "--version"],
                                     capture_output=True, check=True), 1, warmup=0)
    report.add("cli.startup_s", section, "`acam --version` (start-up + import)", "s", t)
    for tol in tolerances[:1] if cfg.mode == "smoke" else tolerances:     # smoke: checks it runs
        measure_lowrank_command(report, cfg, device, workdir, raw, tol, audio)


def measure_lowrank_command(report: Report, cfg: Config, device: str, workdir: Path, raw: Path, tol: float,
                            audio: float) -> None:
    """``beamform run --tolerance TOL``: the first run with an empty low-rank cache (the factors are
    computed and cached), then warm runs (read from the cache), against the exact command's median."""
    import os
    import tempfile

    section = f"4. End to end ({cfg.seconds:g} s recording, {device})"
    exact = report["cli.wall_s"].median
    cmd = _command(raw, cfg, device, workdir / "cube_lr.h5") + ["--tolerance", f"{tol:g}"]
    with tempfile.TemporaryDirectory(prefix="acam-lowrank-cache-") as cache:
        env = {**os.environ, "ACAM_CACHE": cache}
        first, _, _ = _run_command(cmd, 1, workdir, env)
        warm, _, _ = _run_command(cmd, cfg.heavy_repeats, workdir, env)
        cache_mib = sum(os.path.getsize(os.path.join(cache, f)) for f in os.listdir(cache)) / 2 ** 20
    report.add(f"cli.lowrank_first_s.{tol:g}", section, f"`beamform run --tolerance {tol:g}`, empty cache", "s",
               first, f"factorises and caches ({cache_mib:.0f} MiB written)")
    report.add(f"cli.lowrank_warm_s.{tol:g}", section, f"`beamform run --tolerance {tol:g}`, cached", "s", warm)
    report.add(f"cli.lowrank_first_ratio.{tol:g}", section, f"first run / exact command, tolerance {tol:g}", "",
               first.derive(lambda t: t / exact))
    report.add(f"cli.lowrank_warm_speedup.{tol:g}", section, f"exact command / warm run, tolerance {tol:g}", "x",
               warm.derive(lambda t: exact / t))


def _command(raw: Path, cfg: Config, device: str, cube: Path) -> list[str]:
    return [sys.executable, "-m", "acam.cli", "beamform", "run", str(raw), "--bins", str(cfg.bins),
            "--rows", str(cfg.rows), "--cols", str(cfg.cols), "--device", device, "-o", str(cube),
            "--no-progress", "--overwrite"]


def _run_command(cmd: list[str], repeats: int, workdir: Path, env=None) -> tuple[Timing, int, list[str]]:
    """Wall times (a fresh process each), the largest peak RSS (KiB) and the outputs."""
    walls, peak_kib, logs = [], 0, []
    cube = Path(cmd[cmd.index("-o") + 1])
    with CpuMeter() as meter:
        for _ in range(repeats):
            wall, rc, peak, log = run_watched(cmd, workdir / "cli.log", env=env)
            if rc != 0:
                raise RuntimeError(f"{shlex.join(cmd)} failed ({rc}):\n{log}")
            cube.unlink()
            walls.append(wall)
            logs.append(log)
            peak_kib = max(peak_kib, peak or 0)
    return Timing(walls, meter.other_cores, meter.steal_cores), peak_kib, logs


def _printed_split(log: str) -> tuple[float, float] | None:
    """``(compute_s, setup_s)`` from the rate line ``beamform run`` prints, or None."""
    import re

    m = re.search(r"compute: \d+ frames in ([0-9.]+) s .* set-up ([0-9.]+) s", log)
    return (float(m.group(1)), float(m.group(2))) if m else None
