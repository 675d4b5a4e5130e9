"""GPU validation in one call: parity with the CPU path, then the GPU's throughput figures.

Run on a machine with a CUDA GPU and CuPy, from the repository root (``benchmarks/gpu_check.sh``
runs this after ``pytest -m gpu``)::

    acam bench gpu-check -o DIR           (or: python -m acam.benchmarks.gpu_check [--skip-e2e], output in $OUT)

Writes ``DIR/gpu_check.json`` (every figure, the card's name, CuPy/CUDA versions) and
``DIR/gpu_check.md`` (the same as a table for benchmarks/RESULTS.md), and prints the table.  Exit
status 1 when a parity check fails (the throughput figures are reported either way).

Parity (CPU vs GPU, errors relative to each (frame, bin) map's peak; limits as in tests/test_gpu.py):
the chunk loop and fused kernel at odd sizes (45 bins: a short last chunk; 70 frames: 3 tiles; 3
segments), ``Beamformer.process`` with a dead microphone in single and double precision, boxcar and
Tukey windows, the low-rank path (each device factorising on its own), the complex64 steering
matrix, whole files over several blocks with a short last block (float32 and float16 cubes), MFCC.

Throughput (CUDA events, median of repeats after a warm-up): cuBLAS complex64 GEMM 8192^2 (the
peak), device copy bandwidth, the batched GEMM at the workload's shape (512 x (1728x128 @ 128x256)),
``process()`` of a 256-frame block (exact and low-rank) against that peak, device-to-host copies of
a cube block from pageable and from pinned memory, how much of a block's copy hides behind the next
block's compute on two streams, and end to end on a 30 s recording: cube files (float32, float16)
and beamforming with MFCC cubes written (the dataset's path).  A bf16 steering path is measured
when the beamformer offers one (``precision='bf16'``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from ..beamform import Beamformer, CameraGrid, SteeringSpec, backend, default_array, write_raw
from ..beamform.sensor import FRAME_RATE, IMAGE_COLS, IMAGE_ROWS, N_BINS, SAMPLE_FREQ
from ..beamform.steering import steering_matrix

TOL = {"single": 1e-4, "double": 1e-10, "mfcc": 1e-5, "steering_c64": 2.5e-7}
DEAD_MIC = np.r_[np.ones(78), 0, np.ones(49)]


class Check:
    """Collects figures and parity results; each section runs on even when another failed."""

    def __init__(self):
        self.rows: list[dict] = []
        self.failed: list[str] = []

    def parity(self, name: str, err: float, limit: float) -> None:
        ok = bool(np.isfinite(err) and err <= limit)
        self.rows.append({"kind": "parity", "name": name, "value": err, "limit": limit, "ok": ok})
        if not ok:
            self.failed.append(name)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {err:.2e} (limit {limit:.0e})", flush=True)

    def figure(self, name: str, value: float, unit: str, note: str = "") -> None:
        self.rows.append({"kind": "figure", "name": name, "value": value, "unit": unit, "note": note})
        print(f"     {name}: {value:.4g} {unit} {note}", flush=True)

    def section(self, title: str, fn, *args) -> None:
        print(f"\n== {title}", flush=True)
        try:
            fn(self, *args)
        except Exception as exc:      # noqa: BLE001 - report and go on with the next section
            self.failed.append(f"{title}: {type(exc).__name__}: {exc}")
            self.rows.append({"kind": "error", "name": title, "value": f"{type(exc).__name__}: {exc}"})
            traceback.print_exc()


def map_err(got, ref) -> float:
    """max |got - ref| / (peak |ref| of each (frame, bin) map); NaN when a cell was never written."""
    got, ref = backend.to_host(got).astype(float), np.asarray(ref, float)
    if np.isnan(got).any():
        return float("nan")
    axes = tuple(range(1, ref.ndim - 1))
    return float((np.abs(got - ref) / np.abs(ref).max(axis=axes, keepdims=True)).max())


def gpu_seconds(cp, fn, repeats: int = 5) -> float:
    """Median seconds of ``fn`` between two CUDA events, after one warm-up call."""
    fn()
    cp.cuda.get_current_stream().synchronize()
    times = []
    for _ in range(repeats):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    return statistics.median(times)


# ------------------------------------------------------------------------------------ parity
def parity_kernels(c: Check, cp, rng) -> None:
    from ..beamform.filter_and_sum import steered_power

    for dtype, prec in ((np.complex64, "single"), (np.complex128, "double")):
        real = np.float32 if prec == "single" else np.float64
        A, X = [(rng.standard_normal(s) + 1j * rng.standard_normal(s)).astype(dtype)
                for s in ((45, 7, 5), (45, 5, 210))]
        scale = rng.random(45).astype(real)
        power = (np.abs(A.astype(complex) @ X) ** 2).reshape(45, 7, 70, 3).sum(-1)
        ref = (power * scale[:, None, None]).transpose(2, 1, 0)
        for chunk in (32, None):
            out = cp.full((70, 7, 45), cp.nan, real)
            steered_power(cp.asarray(A), cp.asarray(X), cp.asarray(scale), out, 3, chunk=chunk)
            c.parity(f"kernel {np.dtype(dtype).name}, 45 bins, 70 frames, 3 segments, chunk {chunk or 'GPU'}",
                     map_err(out, ref), TOL[prec])


def parity_process(c: Check, cp, rng) -> None:
    frames = rng.standard_normal((40, 1024, 128)).astype(np.float32)
    cases = [(512, "single", "hann", 0.0), (100, "single", "tukey:0.75", 0.0), (512, "double", "hann", 0.0),
             (512, "single", "boxcar", 0.0), (512, "single", "hann", 1e-3)]
    for n_bins, prec, window, tol in cases:
        spec = SteeringSpec(default_array(), CameraGrid(), SAMPLE_FREQ, n_bins, weights=DEAD_MIC)
        res = {}
        for dev in ("cpu", "cuda"):
            os.environ["ACAM_CACHE"] = tempfile.mkdtemp()      # no shared cache: each device factorises
            bf = Beamformer(spec, FRAME_RATE, window, device=dev, precision=prec, tolerance=tol)
            res[dev] = bf.process(frames if dev == "cpu" else cp.asarray(frames))
            if tol:
                res[dev + "_ranks"] = bf.lowrank.ranks
        name = f"process {n_bins} bins {prec} {window}" + (f" low-rank {tol:g}" if tol else "")
        c.parity(name, map_err(res["cuda"], res["cpu"]), TOL[prec])
        if tol:
            c.figure(f"{name}: bins whose rank differs CPU/GPU", int((res["cpu_ranks"] != res["cuda_ranks"]).sum()), "")
    spec = SteeringSpec(default_array(), CameraGrid(), SAMPLE_FREQ, 512)
    a = steering_matrix(spec, np, np.complex64)
    b = cp.asnumpy(steering_matrix(spec, cp, np.complex64))
    c.parity("steering complex64, GPU vs CPU, / max |A|", float(np.abs(b - a).max() / np.abs(a).max()),
             TOL["steering_c64"])


def parity_files(c: Check, cp, rng, workdir: Path) -> None:
    from ..beamform.io import Cube
    from ..beamform.pipeline import RunSettings, beamform_file
    from ..dataset.mfcc import cube_mfcc_settings, mfcc

    raw = workdir / "r42.h5"
    write_raw(raw, rng.standard_normal((42 * 1024 + 300, 128)).astype(np.float32), SAMPLE_FREQ, default_array().positions)
    for out_dtype in ("float32", "float16"):
        cubes = {}
        for dev in ("cpu", "cuda"):
            path = workdir / f"{dev}.h5"
            beamform_file(raw, path, RunSettings(device=dev, block_frames=16, window="tukey:0.75", out_dtype=out_dtype))
            with Cube.open(path) as cb:
                cubes[dev], attrs = cb.cube[()], dict(cb.attrs)
            os.remove(path)
        limit = TOL["single"] + (2.0 ** -10 if out_dtype == "float16" else 0)
        c.parity(f"beamform_file 42 frames in blocks of 16, {out_dtype}", map_err(cubes["cuda"], cubes["cpu"]), limit)
    bin_hz, factor = cube_mfcc_settings(attrs)
    want = mfcc(cubes["cpu"], bin_hz, factor)
    got = cp.asnumpy(mfcc(cp.asarray(cubes["cpu"]), bin_hz, factor))
    err = float((np.abs(got - want) / np.abs(want).max(axis=-1, keepdims=True)).max())
    c.parity("MFCC of the same cube, / each pixel's largest coefficient", err, TOL["mfcc"])


# -------------------------------------------------------------------------------- throughput
def throughput(c: Check, cp, rng) -> dict:
    n = 8192
    a = (cp.asarray(rng.standard_normal((n, n), np.float32))
         + 1j * cp.asarray(rng.standard_normal((n, n), np.float32))).astype(cp.complex64)
    out = cp.empty_like(a)
    peak = 8 * n ** 3 / gpu_seconds(cp, lambda: cp.matmul(a, a, out=out)) / 1e12
    c.figure("cuBLAS complex64 GEMM 8192^2 (peak)", peak, "TFLOP/s")
    a = out = None    # free the buffers (the timed lambdas still name them)
    src = cp.asarray(rng.standard_normal(2 ** 28, np.float32))
    dst = cp.empty_like(src)
    t = gpu_seconds(cp, lambda: cp.copyto(dst, src))
    c.figure("device copy 1 GiB (read + write)", 2 * src.nbytes / t / 1e9, "GB/s")
    src = dst = None
    bf = Beamformer(SteeringSpec(default_array(), CameraGrid(), SAMPLE_FREQ, 512), FRAME_RATE, "hann", device="cuda")
    A = bf.steering
    X = cp.asarray(rng.standard_normal((512, 128, 256), np.float32)).astype(cp.complex64)
    Y = cp.empty((512, 1728, 256), cp.complex64)
    t = gpu_seconds(cp, lambda: cp.matmul(A, X, out=Y))
    gemm = 8 * 512 * 1728 * 128 * 256 / t / 1e12
    c.figure("batched GEMM 512 x (1728x128 @ 128x256)", gemm, "TFLOP/s", f"{gemm / peak:.0%} of peak")
    X = Y = None
    x = cp.asarray(rng.standard_normal((256, 1024, 128), np.float32))
    o = cp.empty((256, IMAGE_ROWS, IMAGE_COLS, N_BINS), cp.float32)
    t = gpu_seconds(cp, lambda: bf.process(x, out=o))
    fl = bf.flops_per_frame() * 256 / t / 1e12
    c.figure("process() of 256 frames (exact)", t * 1e3, "ms",
             f"{fl:.1f} TFLOP/s = {fl / peak:.0%} of peak; {256 / 12 / t:.0f}x real time")
    c.figure("process() fraction of CGEMM peak", fl / peak, "", "goal >= 0.5")
    os.environ["ACAM_CACHE"] = tempfile.mkdtemp()
    lr = Beamformer(bf.spec, FRAME_RATE, "hann", device="cuda", tolerance=1e-3)
    lr.prepare()
    t_lr = gpu_seconds(cp, lambda: lr.process(x, out=o))
    c.figure("process() of 256 frames (low-rank 1e-3)", t_lr * 1e3, "ms",
             f"mean rank {lr.lowrank.ranks.mean():.1f}; {t / t_lr:.2f}x the exact path")
    bf16 = _bf16(c, cp, bf.spec, x, o, t)
    return {"bf": bf, "x": x, "o": o, "compute_s": t, "bf16": bf16}


def _bf16(c: Check, cp, spec, x, o, t_exact):
    """The bf16 steering path, when the beamformer has one: its time and its error against double."""
    from ..core.errors import AcamError

    try:
        bf = Beamformer(spec, FRAME_RATE, "hann", device="cuda", precision="bf16")
    except AcamError as exc:
        c.figure("bf16 path", float("nan"), "", f"not available: {exc}")
        return None
    t = gpu_seconds(cp, lambda: bf.process(x, out=o))
    c.figure("process() of 256 frames (bf16)", t * 1e3, "ms", f"{t_exact / t:.2f}x the complex64 path")
    ref = Beamformer(spec, FRAME_RATE, "hann", device="cuda", precision="double").process(x[:16].astype(cp.float64))
    got = bf.process(x[:16])
    c.figure("bf16 error vs double, / each map's peak", map_err(got, cp.asnumpy(ref)), "")
    return t


def transfers(c: Check, cp, state: dict) -> None:
    from ..beamform.io import aligned_empty

    o, bf, x = state["o"], state["bf"], state["x"]
    pageable = np.empty(o.shape, np.float32)
    pinned_buf = aligned_empty(o.shape, np.float32)
    rate = {}
    for name, buf in (("pageable", pageable), ("pinned (cudaHostRegister)", pinned_buf)):
        with backend.pinned(buf) if buf is pinned_buf else _nothing():
            o.get(out=buf)
            t0 = time.perf_counter()
            for _ in range(3):
                o.get(out=buf)
            rate[buf is pinned_buf] = o.nbytes / ((time.perf_counter() - t0) / 3)
        c.figure(f"device-to-host 864 MiB, {name}", rate[buf is pinned_buf] / 1e9, "GB/s")
    # overlap: block i's copy on a second stream while block i+1 computes (gpu_pipeline's scheme)
    host = [pinned_buf, aligned_empty(o.shape, np.float32)]
    with backend.pinned(*host):
        down = backend.Downloads(host, np.float32)
        cp.cuda.Device().synchronize()
        t0 = time.perf_counter()
        for i in range(6):
            with down.compute:
                bf.process(x, out=down.target(i, 256))
            down.start(i, 256)
        for s in (down.compute, down.copy):
            s.synchronize()
        both = (time.perf_counter() - t0) / 6
    copy_s = o.nbytes / rate[True]
    c.figure("block loop: compute + copy per 256 frames", both * 1e3, "ms",
             f"compute {state['compute_s'] * 1e3:.1f} ms, copy {copy_s * 1e3:.1f} ms: "
             f"{(state['compute_s'] + copy_s - both) / min(state['compute_s'], copy_s):.0%} of the shorter hidden")


class _nothing:
    def __enter__(self):
        return False

    def __exit__(self, *exc):
        return False


def end_to_end(c: Check, cp, rng, workdir: Path) -> None:
    from ..beamform.pipeline import RunSettings, beamform_file

    raw = workdir / "r30.h5"
    write_raw(raw, rng.standard_normal((368640, 128), np.float32), SAMPLE_FREQ, default_array().positions)
    for out_dtype in ("float32", "float16"):
        for i in range(2):
            t0 = time.perf_counter()
            beamform_file(raw, workdir / "c30.h5", RunSettings(device="cuda", out_dtype=out_dtype))
            t = time.perf_counter() - t0
            os.remove(workdir / "c30.h5")
            c.figure(f"end to end 30 s -> {out_dtype} cube file, run {i}", 30 / t, "x real time",
                     f"{t:.2f} s" + (" (builds the steering matrix)" if i == 0 and out_dtype == "float32" else ""))
    for i in range(2):
        t = _mfcc_file_from_raw(cp, raw, workdir / "m30.h5")
        c.figure(f"end to end 30 s -> MFCC cube file (beamform + MFCC on the GPU), run {i}", 30 / t, "x real time",
                 f"{t:.2f} s; goal >= 1000x")


def _mfcc_file_from_raw(cp, raw_path, out_path) -> float:
    """The dataset's path (beamform a block, MFCC on the device, only MFCC to the host) over a recording
    read from its file, blocks of 256 frames; returns seconds."""
    import h5py

    from ..beamform.filter_and_sum import frame_starts
    from ..beamform.io import RawRecording
    from ..dataset.mfcc import cube_mfcc_settings, mfcc

    t0 = time.perf_counter()
    with RawRecording.open(raw_path) as raw, h5py.File(out_path, "w") as f:
        bf = Beamformer(SteeringSpec(raw.geometry, CameraGrid(), raw.sample_freq, 512), raw.frame_rate, "tukey:0.75",
                        device="cuda")
        bin_hz, factor = cube_mfcc_settings({"nfft": 1024, "n_bins": 512, "window": "tukey:0.75", "frame_len": 1024})
        starts = frame_starts(raw.n_samples, raw.sample_freq, raw.frame_rate)
        d = f.create_dataset("mfcc", (len(starts), IMAGE_ROWS, IMAGE_COLS, 12), np.float32)
        for b0 in range(0, len(starts), 256):
            frames = raw.read_frames(starts[b0:b0 + 256], bf.frame_len, np.float32)
            d[b0:b0 + len(frames)] = cp.asnumpy(mfcc(bf.process(cp.asarray(frames)), bin_hz, factor))
    os.remove(out_path)
    return time.perf_counter() - t0


# -------------------------------------------------------------------------------------- main
def card(cp) -> dict:
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return {"name": name, "memory_gib": props["totalGlobalMem"] / 2 ** 30,
            "multiprocessors": props["multiProcessorCount"], "cupy": cp.__version__,
            "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(), "driver": cp.cuda.runtime.driverGetVersion()}


def markdown(info: dict, c: Check) -> str:
    lines = [f"## GPU check on {info['name']}", "",
             f"CuPy {info['cupy']}, CUDA runtime {info['cuda_runtime']}, driver {info['driver']}, "
             f"{info['memory_gib']:.0f} GiB, {info['multiprocessors']} SMs; {info['date']}.", "",
             "| check | value | limit / unit | note |", "| --- | --- | --- | --- |"]
    for r in c.rows:
        if r["kind"] == "parity":
            lines.append(f"| {r['name']} | {r['value']:.2e} | {r['limit']:.0e} | {'ok' if r['ok'] else 'FAIL'} |")
        elif r["kind"] == "figure":
            lines.append(f"| {r['name']} | {r['value']:.4g} | {r['unit']} | {r['note']} |")
        else:
            lines.append(f"| {r['name']} | ERROR | | {r['value']} |")
    return "\n".join(lines) + "\n"


def run_gpu_check(*, out: str | None = None, skip_e2e: bool = False) -> int:
    """Every check and figure above; ``gpu_check.json`` and ``gpu_check.md`` into ``out`` (default:
    ``$OUT``, else ``gpu-check``).  Returns the exit status: 0 passed, 1 a check failed, 2 no GPU."""
    out = out or os.environ.get("OUT", "gpu-check")
    if not backend.gpu_available():
        print("gpu_check: CuPy or a CUDA GPU is not available", file=sys.stderr)
        return 2
    cp = backend.xp_for("cuda")
    info = {**card(cp), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    print(f"{info['name']}: CuPy {info['cupy']}, CUDA {info['cuda_runtime']}", flush=True)
    rng = np.random.default_rng(0)
    c = Check()
    state: dict = {}
    with tempfile.TemporaryDirectory(prefix="acam-gpu-check-") as tmp:
        work = Path(tmp)
        c.section("parity: kernels at odd sizes", parity_kernels, cp, rng)
        c.section("parity: Beamformer.process", parity_process, cp, rng)
        c.section("parity: whole files and MFCC", parity_files, cp, rng, work)
        c.section("throughput", lambda c_, *a: state.update(throughput(c_, *a)), cp, rng)
        if state:
            c.section("transfers and overlap", transfers, cp, state)
        state.clear()
        cp.get_default_memory_pool().free_all_blocks()
        if not skip_e2e:
            c.section("end to end", end_to_end, cp, rng, work)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps({"card": info, "rows": c.rows, "failed": c.failed}, indent=1,
                                                   default=float) + "\n")
    md = markdown(info, c)
    (out / "gpu_check.md").write_text(md)
    print("\n" + md)
    if c.failed:
        print("FAILED: " + "; ".join(c.failed), file=sys.stderr)
    return 1 if c.failed else 0


if __name__ == "__main__":         # the GPU machine's entry point; options: ``acam bench gpu-check``
    sys.exit(run_gpu_check(skip_e2e="--skip-e2e" in sys.argv[1:]))
