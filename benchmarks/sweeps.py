"""How the cost of our compute step grows: microphones, grid size, bins and recording length.

Each sweep varies one size around the sensor's configuration (128 mics, 36 x 48, 512 bins, blocks of
64 frames) and times ``Beamformer.process``; the slope of log(time) against log(size) is fitted.  The
steering product is linear in every size (slope 1); the FFT and the power/transpose pass do not
grow with the microphones, so small sizes sit above the line and the fitted slope comes out below
1.  In the bins sweep each frame is exactly ``2 * bins`` samples long (frame rate
``sample_freq / (2 * bins)``): with 1024-sample frames fewer bins would only mean more averaged
segments and the same work.
"""

from __future__ import annotations

import numpy as np

from acam.beamform import Beamformer, CameraGrid, SteeringSpec, default_array
from acam.beamform.geometry import ArrayGeometry, aperiodic
from acam.beamform.sensor import FRAME_RATE, SAMPLE_FREQ

SWEEPS = {
    "mics": [32, 64, 128, 256],
    "grid": [(9, 12), (18, 24), (36, 48), (72, 96)],
    "bins": [64, 128, 256, 512],
    "frames": [16, 32, 64, 128],
}
SMOKE = {"mics": [8, 16], "grid": [(3, 4), (6, 8)], "bins": [16, 32], "frames": [2, 4]}
LENGTHS = [10.0, 30.0, 60.0]
SMOKE_LENGTHS = [0.5, 1.0]


def _geometry(n: int) -> ArrayGeometry:
    if n <= 128:
        return ArrayGeometry(default_array().positions[:n], f"acam128[:{n}]")
    return aperiodic(n, 0.45, 0.015, 0.035, seed=0)


def sweep(name: str, values=None, repeats: int = 3, smoke: bool = False, device: str = "cpu") -> dict:
    """Times of the compute step for each value of one size, and the fitted log-log slope."""
    from .measure import timed

    values = values or (SMOKE if smoke else SWEEPS)[name]
    base = {"mics": 16 if smoke else 128, "grid": (6, 8) if smoke else (36, 48),
            "bins": 32 if smoke else 512, "frames": 4 if smoke else 64}
    rng = np.random.default_rng(0)
    rows = []
    for v in values:
        cfg = {**base, name: v}
        rows_, cols_ = cfg["grid"]
        spec = SteeringSpec(_geometry(cfg["mics"]), CameraGrid(rows_, cols_), SAMPLE_FREQ, cfg["bins"])
        frame_len = 2 * cfg["bins"] if name == "bins" else 1024
        bf = Beamformer(spec, SAMPLE_FREQ / frame_len, device=device)
        frames = rng.standard_normal((cfg["frames"], frame_len, cfg["mics"])).astype(np.float32)
        out = bf.xp.empty((cfg["frames"], rows_, cols_, cfg["bins"]), np.float32)
        x = bf.xp.asarray(frames)
        t = timed(lambda: bf.process(x, out=out), repeats, bf.xp)
        size = rows_ * cols_ if name == "grid" else v
        rows.append({"value": v if name != "grid" else f"{rows_}x{cols_}", "size": size,
                     "seconds": list(t), "median": float(np.median(t)),
                     "seconds_per_frame": float(np.median(t)) / cfg["frames"]})
    x = np.log([r["size"] for r in rows])
    y = np.log([r["median"] for r in rows])
    slope = float(np.polyfit(x, y, 1)[0]) if len(rows) > 1 else float("nan")
    return {"name": name, "rows": rows, "slope": slope, "expected_slope": 1.0}


def sweep_length(seconds=None, smoke: bool = False, device: str = "cpu") -> dict:
    """The whole ``beamform run`` command on recordings of growing length, each in a fresh process:
    wall time (expected slope 1 against length) and peak resident memory (expected flat: frames
    are streamed in blocks)."""
    import sys
    import tempfile
    from pathlib import Path

    from acam.beamform import write_raw

    from .measure import run_watched

    seconds = seconds or (SMOKE_LENGTHS if smoke else LENGTHS)
    n_mics = 16 if smoke else 128
    rows = []
    with tempfile.TemporaryDirectory(prefix="acam-length-") as tmp:
        for sec in seconds:
            raw, cube = Path(tmp) / "raw.h5", Path(tmp) / "cube.h5"
            data = np.random.default_rng(0).standard_normal((int(sec * SAMPLE_FREQ), n_mics)).astype(np.float32)
            write_raw(raw, data, SAMPLE_FREQ, default_array().positions[:n_mics], FRAME_RATE)
            del data
            cmd = [sys.executable, "-m", "acam.cli", "beamform", "run", str(raw), "-o", str(cube), "--no-progress",
                   "--device", device] + (["--bins", "32", "--rows", "6", "--cols", "8"] if smoke else [])
            wall, rc, peak_kib, log = run_watched(cmd, Path(tmp) / "log.txt")
            if rc != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {log}")
            cube.unlink()
            rows.append({"value": sec, "size": sec, "median": wall, "seconds": [wall],
                         "peak_rss_mib": (peak_kib or 0) / 1024, "seconds_per_frame": wall / (sec * 12)})
    x, y = np.log([r["size"] for r in rows]), np.log([r["median"] for r in rows])
    return {"name": "length", "rows": rows, "slope": float(np.polyfit(x, y, 1)[0]), "expected_slope": 1.0,
            "rss_ratio_longest_to_shortest": rows[-1]["peak_rss_mib"] / max(rows[0]["peak_rss_mib"], 1e-9)}
