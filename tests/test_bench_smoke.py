"""The throughput benchmark runs end to end in its smoke configuration and writes a sound JSON.

Timings are never asserted: they depend on the machine.  Only that every figure exists and is a
positive finite number, and that the plain-NumPy baseline agrees with the beamformer.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

POSITIVE_FIGURES = (
    "peak.cpu_gemm_gflops", "peak.cpu_copy_gbps",
    "compute.steering_first_s", "compute.steering_warm_s", "compute.block_s",
    "compute.ms_per_frame", "compute.frames_per_s", "compute.realtime_factor", "compute.gflops",
    "compute.peak_fraction",
    "baseline.block_s", "baseline.realtime_factor", "baseline.gflops", "baseline.time_ratio",
    "baseline.matmul_gflops",
    "e2e.write_raw_s", "e2e.seconds", "e2e.first_run_s", "e2e.realtime_factor", "e2e.compute_estimate_s",
    "cli.wall_s", "cli.realtime_factor", "cli.startup_s",
    "memory.steering_mib", "memory.maxrss_after_e2e_mib", "memory.maxrss_end_mib",
)


def _positive_finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_smoke_run_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "acam.cli", "bench", "beamform", "--smoke", "-o", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Goals" in proc.stdout

    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["mode"] == "smoke"
    assert doc["device"] in ("cpu", "cuda")
    assert "--smoke" in doc["command"]
    for key in ("platform", "cpu_model", "usable_cpus", "versions", "threadpools"):
        assert key in doc["machine"], key
    assert {"numpy", "scipy", "numba"} <= set(doc["machine"]["versions"])

    figures = doc["figures"]
    expected = POSITIVE_FIGURES
    if doc["device"] == "cuda":
        expected += ("peak.gpu_gemm_gflops", "peak.gpu_copy_gbps")
    for key in expected:
        assert key in figures, key
        fig = figures[key]
        for stat in ("median", "min", "max"):
            assert _positive_finite(fig[stat]), (key, stat, fig[stat])
        assert fig["n"] == len(fig["samples"]) >= 1
        assert all(_positive_finite(s) for s in fig["samples"]), (key, fig["samples"])
    for key, fig in figures.items():  # derived figures may be negative (overheads), never NaN
        assert math.isfinite(fig["median"]), key

    # the timed repeats: medians of at least three runs
    assert figures["compute.block_s"]["n"] >= 3
    assert figures["peak.cpu_gemm_gflops"]["n"] >= 3
    # correctness, not speed: the plain baseline computes the same cube
    assert 0 <= figures["baseline.max_rel_diff"]["median"] < 1e-4

    assert [g["met"] for g in doc["goals"]] == [None] * len(doc["goals"])
    for key in ("matrix_features", "openblas_kernels", "cpu_vendor"):
        assert key in doc["machine"], key


def test_smoke_extras_and_report(tmp_path):
    """`acam bench all --smoke` adds peers, sweeps and the other steps; `acam bench report` renders them."""
    out = tmp_path / "all.json"
    import os

    env = {**os.environ, "ACAM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "acam.cli", "bench", "all", "--smoke", "-o", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    for tool in ("pyroomacoustics_SRP", "pyroomacoustics_NormMUSIC"):
        r = doc["peers"][tool]
        assert r["extrapolated"] and all(_positive_finite(s) for s in r["seconds"])
    assert set(doc["sweeps"]) == {"mics", "grid", "bins", "frames", "length"}
    assert all(_positive_finite(r["peak_rss_mib"]) for r in doc["sweeps"]["length"]["rows"])
    assert [r["tolerance"] for r in doc["lowrank"]] == [0.0, 1e-2, 1e-3, 1e-4]
    # the whole command with an empty and a warm low-rank cache (smoke: the first tolerance only)
    for key in ("cli.lowrank_first_s.0.01", "cli.lowrank_warm_s.0.01", "cli.lowrank_first_ratio.0.01"):
        assert _positive_finite(doc["figures"][key]["median"]), key
    goals = {g["goal"] for g in doc["goals"]}
    assert any(g.startswith("low-rank 0.01 first run") for g in goals)
    # reduced precision side by side with single: speed and error against float64 in the same run
    rows = {r["precision"]: r for r in doc["modes"]["precisions"]}
    assert set(rows) == {"single", "bf16", "bf16x3"}
    for r in rows.values():
        assert _positive_finite(r["realtime_factor"]) and math.isfinite(r["max_error"])
    if rows["bf16"]["ran"] == "bf16":
        assert 0 < rows["bf16"]["max_error"] < 2e-2 and "bf16 max error / map peak (within 30 dB)" in goals
    assert all(math.isfinite(r["max_error"]) and _positive_finite(r["realtime_factor"]) for r in doc["lowrank"])
    for r in doc["sweeps"].values():
        assert all(_positive_finite(row["median"]) for row in r["rows"]) and math.isfinite(r["slope"])
    steps = doc["steps"]
    assert _positive_finite(steps["mfcc"]["seconds_per_frame"])
    assert set(steps["training"]) == {"dualcamnet", "hearnet", "soundnet", "resnet50"}
    assert _positive_finite(steps["distillation"]["cached"]) and _positive_finite(steps["distillation"]["live"])
    sc = doc["scaling"]
    assert [r["workers"] for r in sc["rows"]] == [1, 2]          # smoke: at most 2 workers
    for r in sc["rows"]:
        assert all(_positive_finite(r[k]) for k in ("files_per_s", "wall_s", "overhead_ms_per_task"))
        assert sum(r["tasks_per_worker"]) == sc["files"]
    md = tmp_path / "report.md"
    proc = subprocess.run([sys.executable, "-m", "acam.cli", "bench", "report", str(out), "-o", str(md)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = md.read_text()
    assert "| pyroomacoustics_SRP |" in text and "| mics |" in text and "distillation step" in text
    assert (tmp_path / "report_sweeps.png").read_bytes()[:4] == b"\x89PNG"
    assert "| workers | files/s |" in text
    assert (tmp_path / "report_scaling.png").read_bytes()[:4] == b"\x89PNG"
