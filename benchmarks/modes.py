"""The other modes of the steering product against the exact path, on a pyroomacoustics recording
of two sources: low-rank steering (``--tolerance``) and reduced precision (``--precision``), each
with its speed and its error against the float64 path measured in the same run.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from acam.beamform import Beamformer, CameraGrid, SteeringSpec, default_array
from acam.beamform import backend
from acam.beamform.geometry import ArrayGeometry

from acam.beamform.sensor import FRAME_RATE, SAMPLE_FREQ

from .compute import Config
from .measure import Report, timed

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


def _two_sources(cfg: Config):
    """``(frames, spec)``: one block of a pyroomacoustics recording of a noise and a chirp source."""
    from acam.beamform.simulate import Scene, SourceSpec, simulate

    n = cfg.block_frames
    geometry = ArrayGeometry(default_array().positions[:cfg.n_mics])
    rec = simulate(Scene((SourceSpec((0.4, 0.2, 2.5), "noise"), SourceSpec((-0.6, -0.3, 3.0), "chirp")),
                         duration=n / FRAME_RATE + 0.1), geometry)
    frames = rec["time_data"][: n * 1024].reshape(n, 1024, -1)
    return frames, SteeringSpec(geometry, CameraGrid(cfg.rows, cfg.cols), SAMPLE_FREQ, cfg.bins)


def map_errors(got: np.ndarray, ref: np.ndarray, first_bin: int) -> dict:
    """Errors of cubes ``got`` against ``ref`` [shape=(frames, rows, cols, bins)]: the largest
    ``|got - ref|`` over each map's peak on pixels within 30 dB of it; peaks moved (strict argmax,
    bins from ``first_bin``); and of those, the ones that moved to a pixel more than twice that error
    below the true peak (a real move, not a swap of near-equal pixels)."""
    n, _, _, k = ref.shape
    peak = ref.max(axis=(1, 2), keepdims=True)
    err = float((np.abs(got - ref) / peak)[ref >= peak * 1e-3].max())
    r, g = ref[..., first_bin:].reshape(n, -1, k - first_bin), got[..., first_bin:].reshape(n, -1, k - first_bin)
    moved = r.argmax(1) != g.argmax(1)
    chosen = np.take_along_axis(r, g.argmax(1)[:, None, :], 1)[:, 0]
    real = chosen < r.max(1) * (1 - 2 * err)
    return {"max_error": err, "peaks_moved": int(moved.sum()), "maps": int(moved.size),
            "peaks_moved_beyond_ties": int(real.sum())}


def measure_precisions(cfg: Config, device: str, precisions: list[str], report: Report) -> dict:
    """Each ``precision`` against the exact complex64 path (speed, same run) and the float64 path
    (error), on the two-source recording; MFCCs of the cube against the exact path's; and the bf16
    product in the 4M (one real product) and 3M (three) forms at the workload's shape."""
    from acam.beamform.reduced import resolve
    from acam.core.cpu import matrix_features
    from acam.dataset.mfcc import mfcc

    frames, spec = _two_sources(cfg)
    n = cfg.block_frames
    ref = Beamformer(spec, FRAME_RATE, device="cpu", precision="double").process(frames.astype(np.float64))
    first_bin = int(np.ceil(1500 / (SAMPLE_FREQ / spec.nfft)))
    out = np.empty((n, cfg.rows, cfg.cols, cfg.bins), np.float32)
    x32 = frames.astype(np.float32)
    rows, mfcc_exact, t_single = [], None, None
    print("\n10. Precision of the steering product (pyroomacoustics recording, two sources; error against float64)\n"
          "-------------------------------------------------------------------------------------------------")
    for name in ["single"] + [p for p in precisions if p != "single"]:
        ran, note = resolve(name, device)
        bf = Beamformer(spec, FRAME_RATE, device=device, precision=name)
        t0 = time.perf_counter()
        bf.prepare()
        t_prep = time.perf_counter() - t0
        t = timed(lambda: bf.process(x32, out=out), cfg.heavy_repeats, bf.xp)
        med = statistics.median(t)
        t_single = med if name == "single" else t_single
        row = {"precision": name, "ran": ran, "note": note, "seconds": list(t), "median_s": med,
               "realtime_factor": n / FRAME_RATE / med, "speedup_vs_single": t_single / med,
               "prepare_s": t_prep, **map_errors(out.astype(np.float64), ref, first_bin)}
        m = mfcc(out)
        mfcc_exact = m if name == "single" else mfcc_exact
        row["mfcc_max_diff"] = float(np.abs(m - mfcc_exact).max())
        rows.append(row)
        report.add(f"precision.{name}.realtime_factor", "10. Precision", f"{name}: real-time factor", "x",
                   t.rate(n / FRAME_RATE))
        print(f"  {name:7s} {row['realtime_factor']:7.2f}x real time ({row['speedup_vs_single']:.2f}x single)   "
              f"max error {row['max_error']:.2e} of peak   peaks moved {row['peaks_moved']}/{row['maps']} "
              f"({row['peaks_moved_beyond_ties']} beyond ties)   MFCC max diff {row['mfcc_max_diff']:.2e}"
              + (f"   [{note}]" if note else ""))
    forms = bf16_forms(cfg) if any(p.startswith("bf16") for p in precisions) else None
    if forms:
        print(f"  bf16 product alone, {forms['shape']}: 4M (one real product) {forms['4M_gflops']:.0f}, "
              f"3M (three) {forms['3M_gflops']:.0f} complex-equivalent GFLOP/s per core")
    return {"precisions": rows, "forms": forms, "bf16_unit": matrix_features()["bf16_unit"]}


def bf16_forms(cfg: Config, chunk: int = 16) -> dict | None:
    """The bfloat16 product of ``chunk`` bins in the 4M form (``W (P x 2M) @ X' (2M x 2C)``) and the
    3M form (``Ar Xr``, ``Ai Xi``, ``(Ar + Ai)(Xr + Xi)`` and their sums), one thread, CPU seconds."""
    try:
        import torch
    except ImportError:
        return None
    p, m, c = cfg.rows * cfg.cols, cfg.n_mics, cfg.block_frames
    kc = min(chunk, cfg.bins)
    g = torch.Generator().manual_seed(0)
    w, x = (torch.randn(kc, p, 2 * m, generator=g).bfloat16(), torch.randn(kc, 2 * m, 2 * c, generator=g).bfloat16())
    a3 = [torch.randn(kc, p, m, generator=g).bfloat16() for _ in range(3)]
    x3 = [torch.randn(kc, m, c, generator=g).bfloat16() for _ in range(3)]
    y = torch.empty(kc, p, 2 * c, dtype=torch.bfloat16)

    def three():
        t1, t2, t3 = (torch.bmm(a, b) for a, b in zip(a3, x3))
        return t1 - t2, t3 - t1 - t2

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = {}
        for name, fn in (("4M", lambda: torch.bmm(w, x, out=y)), ("3M", three)):
            fn()
            ts = []
            for _ in range(max(3, cfg.repeats)):
                t0 = time.process_time()
                fn()
                ts.append(time.process_time() - t0)
            res[f"{name}_gflops"] = 8.0 * kc * p * m * c / statistics.median(ts) / 1e9
    finally:
        torch.set_num_threads(threads)
    return {"shape": f"{kc} x ({p}x{2 * m} @ {2 * m}x{2 * c})", **res}
