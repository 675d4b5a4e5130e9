"""The GPU path's logic, checked on the CPU: launch geometry and index maths of the CUDA kernels
(transcribed into NumPy, run over every block and thread of the real launch), argument checks that
fire before CuPy is touched, the padded low-rank product, chunk sizes, MFCC's matrix shapes, the
fallbacks without a GPU, and the training hunks for CUDA (timeout, determinism).  What needs a GPU
is in tests/test_gpu.py."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from acam.beamform import CameraGrid, SteeringSpec, backend, default_array
from acam.beamform._kernels import CUDA_NAMES, CUDA_SOURCE
from acam.beamform.steering import steering_matrix
from acam.core.errors import AcamError


# ------------------------------------------------------------------------ power_transpose, emulated
def emulate_power_transpose(z, scale, out, k0: int, n_segments: int) -> None:
    """The CUDA ``power_transpose`` line by line: every block of the grid that
    :func:`backend.power_transpose_launch` gives, every thread of it, both phases around
    ``__syncthreads`` (flat pointers and the kernel's own index expressions)."""
    kc, n_pix, n_cols = z.shape
    n_frames = n_cols // n_segments
    n_bins = out.shape[-1]
    (gx, gy, gz), (bx, by) = backend.power_transpose_launch(kc, n_pix, n_frames)
    zf, of = z.reshape(-1), out.reshape(-1)
    for p in range(gx):
        for y in range(gy):
            for zz in range(gz):
                tile = np.full((32, 33), np.nan, out.dtype)
                b0, kk0 = y * 32, zz * 32
                for ty in range(by):
                    for tx in range(bx):
                        for r in range(ty, 32, by):
                            kk, b = kk0 + r, b0 + tx
                            acc = 0.0
                            if kk < kc and b < n_frames:
                                row = (kk * n_pix + p) * n_cols + b * n_segments
                                acc = np.sum(np.abs(zf[row:row + n_segments]) ** 2) * scale[k0 + kk]
                            tile[r, tx] = acc
                for ty in range(by):                       # after __syncthreads()
                    for tx in range(bx):
                        for r in range(ty, 32, by):
                            b, kk = b0 + r, kk0 + tx
                            if b < n_frames and kk < kc:
                                of[(b * n_pix + p) * n_bins + k0 + kk] = tile[tx, r]


@pytest.mark.parametrize("kc, n_pix, n_frames, n_segments, n_bins, k0", [
    (45, 3, 70, 3, 100, 40),     # short chunk at an offset, 3 frame tiles, 2 bin tiles, 3 segments
    (32, 2, 32, 1, 32, 0),       # exactly one tile
    (7, 4, 1, 2, 7, 0),          # one frame, a chunk under one tile
    (33, 2, 33, 1, 66, 33),      # one past a tile in both directions, the last chunk of the bins
])
def test_power_transpose_index_maths(rng, kc, n_pix, n_frames, n_segments, n_bins, k0):
    z = (rng.standard_normal((kc, n_pix, n_frames * n_segments))
         + 1j * rng.standard_normal((kc, n_pix, n_frames * n_segments))).astype(np.complex64)
    scale = rng.random(n_bins).astype(np.float32)
    out = np.full((n_frames, n_pix, n_bins), np.nan, np.float32)      # poisoned: unwritten cells stay nan
    emulate_power_transpose(z, scale, out, k0, n_segments)
    ref = (np.abs(z) ** 2).reshape(kc, n_pix, n_frames, n_segments).sum(-1) * scale[k0:k0 + kc, None, None]
    np.testing.assert_allclose(out[:, :, k0:k0 + kc], ref.transpose(2, 1, 0), rtol=1e-6)
    assert np.isnan(out[:, :, :k0]).all() and np.isnan(out[:, :, k0 + kc:]).all()   # nothing else written


def test_power_transpose_launch_limits():
    assert backend.power_transpose_launch(512, 1728, 256) == ((1728, 8, 16), (32, 8))
    with pytest.raises(AcamError, match="exceed the launch grid"):
        backend.power_transpose_launch(32, 10, 65536 * 32)


# ---------------------------------------------------------------------------- steering, emulated
def emulate_steering_fill(gain, dtau, omega, dtype):
    """The CUDA ``steering_fill``: flat index i -> (bin k, pixel*mic pm) as the kernel splits it; the
    phase and gain product in double precision, rounded once to the output type."""
    n_bins, (n_pix, n_mics) = len(omega), gain.shape
    i = np.arange(n_bins * n_pix * n_mics)
    pm, k = i % (n_pix * n_mics), i // (n_pix * n_mics)
    ph = omega[k] * dtau.reshape(-1)[pm]
    real = np.float32 if dtype == np.complex64 else np.float64
    g = gain.reshape(-1)[pm]
    out = np.empty(i.size, dtype)
    out.real, out.imag = (g * np.cos(ph)).astype(real), (g * np.sin(ph)).astype(real)
    return out.reshape(n_bins, n_pix, n_mics)


def test_steering_kernel_maths_matches_the_cpu_in_single_precision():
    """Measured here: the kernel's maths against the CPU's complex64 matrix 1.1e-7 of the largest
    value (one float32 ulp there); a phase formed in float32 instead was 2.9e-6 off."""
    spec = SteeringSpec(default_array(), CameraGrid(6, 8), 12288.0, 512)     # phases up to 21 rad
    gain, dtau = spec.gains_and_delays()
    omega = np.arange(spec.n_bins) * (2 * np.pi * spec.sample_freq / spec.nfft)
    cpu = steering_matrix(spec, np, np.complex64)
    top = np.abs(cpu).max()
    got = emulate_steering_fill(gain, dtau, omega, np.complex64)
    assert np.abs(got - cpu).max() <= 2.5e-7 * top
    single = gain[None] * np.exp(1j * (omega.astype(np.float32)[:, None, None] * dtau.astype(np.float32)))
    assert np.abs(single - cpu).max() > 1e-6 * top          # why the phase is double on the GPU
    cpu128 = steering_matrix(spec, np, np.complex128)
    assert np.abs(emulate_steering_fill(gain, dtau, omega, np.complex128) - cpu128).max() <= 1e-12 * top


# ------------------------------------------------------------------ argument checks before CuPy
def test_gpu_kernel_wrappers_check_their_arguments_first():
    z = np.zeros((4, 3, 6), np.complex64)
    out = np.zeros((2, 3, 8), np.float32)
    scale = np.ones(8, np.float32)
    with pytest.raises(AcamError, match="complex64 or complex128"):
        backend.gpu_power_transpose(z.real.copy(), scale, out, 0, 3)
    with pytest.raises(AcamError, match="scale and out must be float32"):
        backend.gpu_power_transpose(z, scale.astype(np.float64), out, 0, 3)
    with pytest.raises(AcamError, match="must be C-contiguous"):
        backend.gpu_power_transpose(z[:, :, ::2], scale, out, 0, 1)
    with pytest.raises(AcamError, match="whole number of 4-segment"):
        backend.gpu_power_transpose(z, scale, out, 0, 4)
    with pytest.raises(AcamError, match="do not fit bins 5..8"):
        backend.gpu_power_transpose(z, scale, out, 5, 3)
    a = np.zeros((5, 3, 2), np.complex64)
    with pytest.raises(AcamError, match="gain must be a C-contiguous float64"):
        backend.gpu_steering(np.zeros((3, 2), np.float32), np.zeros((3, 2)), np.zeros(5), a)
    with pytest.raises(AcamError, match="omega must be"):
        backend.gpu_steering(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(4), a)


def test_without_a_gpu_pinning_is_a_no_op_and_keeps_the_buffers():
    if backend.gpu_available():
        pytest.skip("checks the fallback without CuPy or a GPU")
    from acam.beamform.io import PAGE, aligned_empty

    a = aligned_empty((3, 5), np.float32)
    a[...] = 7
    with backend.pinned(a, np.empty(0)) as ok:
        assert ok is False
    assert a.ctypes.data % PAGE == 0 and (a == 7).all()


# --------------------------------------------------------------------------------- chunk sizes
@pytest.mark.parametrize("n_bins, n_pix, n_cols, budget, want", [
    (512, 1728, 256, 512 * 2 ** 20, 128),     # the default setting: 4 launches per 256-frame block
    (512, 1728, 64, 512 * 2 ** 20, 512),      # a short block: every bin at once
    (100, 10, 10, 8 * 10 * 10 * 40, 34),      # 40 fit: 3 launches of equal width (34, 34, 32)
    (7, 10, 10, 1, 1),                        # nothing fits: one bin at a time
])
def test_gpu_chunk(n_bins, n_pix, n_cols, budget, want):
    k = backend.gpu_chunk(n_bins, n_pix, n_cols, 8, budget)
    assert k == want
    assert k == 1 or k * n_pix * n_cols * 8 <= budget


# ---------------------------------------------------------------------------- workers on a GPU
def test_several_local_workers_on_one_gpu_are_refused(monkeypatch):
    monkeypatch.setattr(backend, "gpu_count", lambda: 1)
    for device in ("auto", "cuda"):
        with pytest.raises(AcamError, match="workers=3 local processes would share 1 GPU"):
            backend.check_gpu_workers(device, 3)
    backend.check_gpu_workers("cpu", 3)           # the CPU: workers are what it is for
    backend.check_gpu_workers("cuda", 1)
    backend.check_gpu_workers("cuda", None)       # serial, remote, or one worker per GPU
    monkeypatch.setattr(backend, "gpu_count", lambda: 4)
    backend.check_gpu_workers("cuda", 4)


def test_beamform_run_refuses_workers_sharing_a_gpu(tmp_path, monkeypatch):
    from acam.beamform.batch import beamform_many
    from acam.beamform.pipeline import RunSettings

    monkeypatch.setattr(backend, "gpu_count", lambda: 1)
    with pytest.raises(AcamError, match="would share 1 GPU"):
        beamform_many([str(tmp_path / "r.h5")], str(tmp_path), RunSettings(device="auto"), workers=2)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------- low rank
@pytest.fixture
def lowrank_setting(tmp_path, monkeypatch, rng):
    from acam.beamform.lowrank import factorise
    from acam.beamform.geometry import ArrayGeometry

    monkeypatch.setenv("ACAM_CACHE", str(tmp_path))
    spec = SteeringSpec(ArrayGeometry(default_array().positions[:24]), CameraGrid(5, 6), 12288.0, 40)
    lr = factorise(spec, 1e-2, dtype=np.complex128)
    X = (rng.standard_normal((40, 24, 6)) + 1j * rng.standard_normal((40, 24, 6))).astype(np.complex128)
    return spec, lr, X


def test_padded_lowrank_product_equals_the_per_bin_one(lowrank_setting):
    """The GPU's two strided-batched products per chunk (zero-padded to the chunk's largest rank)
    against the CPU's two small products per bin, in double precision: partial last chunk, ranks
    varying inside a chunk."""
    from acam.beamform.filter_and_sum import power_by_chunks
    from acam.beamform.lowrank import padded_factors, padded_product, steered_power_lowrank

    _, lr, X = lowrank_setting
    assert len(set(lr.ranks[:16].tolist())) > 1           # padding is exercised
    scale = np.linspace(0.5, 1.5, 40)
    ref = steered_power_lowrank(lr, X, scale, np.zeros((3, 30, 40)), 2)
    for chunk in (16, 40, 1):
        got = power_by_chunks(padded_product(lr, X, chunk), 40, 30, 6, np.complex128, scale,
                              np.full((3, 30, 40), np.nan), 2, chunk, threads=1)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14 * ref.max())
    pads = padded_factors(lr, 16)
    assert [c.shape[2] for c, _ in pads.values()] == [int(lr.ranks[k:k + 16].max()) for k in (0, 16, 32)]
    assert padded_factors(lr, 16) is pads                   # built once per chunk width and device


def test_lowrank_factors_are_cached_once_per_setting(lowrank_setting, tmp_path):
    """The factors are computed on the CPU (double-precision eigh) whatever the device, so one cache
    file serves both; a GPU beamformer moves them to the device."""
    from acam.beamform.lowrank import cache_path

    spec, _, _ = lowrank_setting
    _, path = cache_path(spec, 1e-2, np.complex128)
    assert os.path.isfile(path) and os.path.dirname(path) == str(tmp_path)
    assert os.listdir(tmp_path) == [os.path.basename(path)]


# ------------------------------------------------------------------------------------- MFCC
def test_mfcc_takes_any_leading_shape_as_one_matrix(rng):
    from acam.dataset import mfcc as M

    cube = rng.random((3, 4, 5, 512)).astype(np.float32) * 10.0 ** rng.uniform(-4, 2, (3, 4, 5, 1))
    factor = M.lab_power_factor(1024, 300.0, 512)
    got = M.mfcc(cube, 12.5, factor)
    assert got.shape == (3, 4, 5, 12) and got.dtype == np.float32
    # each pixel alone, the factor applied to the spectra first (float64): equal within float32 rounding
    energies = np.maximum((cube.astype(float) * factor) @ M.mel_filterbank(512, 12.5), M.FLOOR)
    ref = np.log(energies) @ M.dct_matrix()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    # one pixel row alone: another GEMM shape, another summation order
    np.testing.assert_allclose(M.mfcc(cube[1, 2], 12.5, factor), got[1, 2], rtol=0, atol=1e-5 * np.abs(ref).max())
    with pytest.raises(AcamError, match="factor has shape"):
        M.mfcc(cube, 12.5, factor[:-1])


# --------------------------------------------------------------------------- training on CUDA
def test_process_group_timeout(monkeypatch):
    from acam.learn.train import process_group_timeout

    monkeypatch.delenv("ACAM_DIST_TIMEOUT", raising=False)
    assert process_group_timeout().total_seconds() == 7200          # NCCL's own default is 600
    monkeypatch.setenv("ACAM_DIST_TIMEOUT", "90")
    assert process_group_timeout().total_seconds() == 90
    for bad in ("0", "-5", "soon", "nan", "inf"):
        monkeypatch.setenv("ACAM_DIST_TIMEOUT", bad)
        with pytest.raises(AcamError, match="ACAM_DIST_TIMEOUT"):
            process_group_timeout()


def test_the_process_group_gets_the_timeout(monkeypatch):
    import torch.distributed as td

    from acam.learn.train import Distributed

    seen = {}
    monkeypatch.setattr(td, "is_initialized", lambda: False)
    monkeypatch.setattr(td, "init_process_group", lambda backend, **kw: seen.update(backend=backend, **kw))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("ACAM_DIST_TIMEOUT", "1234")
    d = Distributed.from_env("cpu")
    assert (d.rank, d.world) == (1, 2)
    assert seen == {"backend": "gloo", "timeout": __import__("datetime").timedelta(seconds=1234)}


def test_deterministic_cuda_sets_the_flags_and_leaves_the_cpu_alone(monkeypatch):
    import torch

    from acam.learn.train import deterministic_cuda

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    try:
        deterministic_cuda(torch.device("cpu"))
        assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                torch.backends.cudnn.benchmark) == before
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
        deterministic_cuda(torch.device("cuda"))       # only flags: works without a GPU
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1], before[2]


# ------------------------------------------------------------------- the CUDA source compiles
def test_cuda_source_compiles_with_vector_loads_and_a_double_phase(tmp_path):
    """nvcc (when this machine has it) compiles the kernels for Hopper; the complex loads are 8-byte
    vector loads (float2 alignment) and the single-precision steering keeps a double-precision
    phase (no float32 sine).  CuPy compiles the same source with NVRTC on the GPU."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    sigs = {"steering_fill": "(const double*, const double*, const double*, Complex2<{t}>*, int, int, int)",
            "power_transpose": "(const Complex2<{t}>*, const {t}*, {t}*, int, int, int, int, int, int)"}
    inst = []
    for name in CUDA_NAMES:
        base, t = name.rstrip(">").split("<")
        inst.append(f"template __global__ void {name}{sigs[base].format(t=t)};")
    src = tmp_path / "k.cu"
    src.write_text(CUDA_SOURCE + "\n".join(inst) + "\n")
    r = subprocess.run([nvcc, "-std=c++14", "-arch=sm_90", "-ptx", str(src), "-o", str(tmp_path / "k.ptx")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ptx = (tmp_path / "k.ptx").read_text()
    bodies = {}
    for part in ptx.split(".entry ")[1:]:
        bodies[part.split("(")[0]] = part
    pt_float = next(v for k, v in bodies.items() if "power_transposeIf" in k)
    assert "ld.global.nc.v2.f32" in pt_float
    steer_float = next(v for k, v in bodies.items() if "steering_fillIf" in k)
    assert "sin.approx" not in steer_float and "cvt.rn.f32.f64" in steer_float


# ------------------------------------------------------------------------ the GPU's block loop
class _Event:
    def __init__(self, work=None):
        self.work = work

    def synchronize(self):
        if self.work is not None:
            self.work()
            self.work = None


class _Stream:
    """A stream whose queued work runs only when someone waits for it (the latest a GPU could)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def wait_event(self, event):
        event.synchronize()

    def record(self):
        return _Event()

    def synchronize(self):
        pass


class _Downloads:
    """NumPy twin of backend.Downloads: copies happen late (when waited for), device buffers are
    poisoned when handed out, so a loop that read a host buffer early or reused a device buffer too
    soon produces a wrong cube."""

    def __init__(self, host, compute_dtype):
        self.host, self.compute, self.copy = host, _Stream(), _Stream()
        self.stage = [np.full(h.shape, np.nan, h.dtype) for h in host]
        same = np.dtype(compute_dtype) == host[0].dtype
        self.scratch = None if same else np.full(host[0].shape, np.nan, compute_dtype)
        self.copied = [None] * len(host)

    def target(self, i, n):
        j = i % 2
        if self.copied[j] is not None:
            self.copied[j].synchronize()
        buf = self.stage[j] if self.scratch is None else self.scratch
        buf[...] = np.nan
        return buf[:n]

    def start(self, i, n):
        j = i % 2
        if self.scratch is not None:
            self.stage[j][:n] = self.scratch[:n]

        def copy():
            self.host[j][:n] = self.stage[j][:n]
        self.copied[j] = _Event(copy)
        return self.copied[j]


class _Uploads:
    def __init__(self, shape, dtype):
        self.stream = _Stream()

    def put(self, i, frames):
        return frames, _Event()

    def release(self, i, stream):
        pass


@pytest.mark.parametrize("out_dtype", ["float32", "float16"])
def test_gpu_block_loop_keeps_blocks_and_buffers_apart(tmp_path, rng, monkeypatch, out_dtype):
    """The GPU loop's bookkeeping (double buffers, events, short last block, float16 conversion before
    the copy) run with NumPy twins of the streams, against the CPU loop's cube."""
    import contextlib

    import h5py

    from acam.beamform import gpu_pipeline, write_raw
    from acam.beamform.pipeline import RunSettings, beamform_file

    raw = tmp_path / "r.h5"
    write_raw(raw, rng.standard_normal((7 * 1024 + 100, 16)).astype(np.float32), 12288.0,
              default_array().positions[:16])
    settings = RunSettings(bins=16, rows=4, cols=5, device="cpu", block_frames=3, out_dtype=out_dtype)
    beamform_file(raw, tmp_path / "cpu.h5", settings)
    monkeypatch.setattr(backend, "Downloads", _Downloads)
    monkeypatch.setattr(backend, "Uploads", _Uploads)
    monkeypatch.setattr(backend, "pinned", lambda *a: contextlib.nullcontext(False))
    from acam.beamform import pipeline

    real = pipeline._stream
    monkeypatch.setattr(pipeline, "_stream", lambda *a, **k: gpu_pipeline.stream_gpu(*a, **k))
    beamform_file(raw, tmp_path / "twin.h5", settings)
    monkeypatch.setattr(pipeline, "_stream", real)
    with h5py.File(tmp_path / "cpu.h5") as a, h5py.File(tmp_path / "twin.h5") as b:
        assert b["cube"].shape == (7, 4, 5, 16) and b["cube"].dtype == np.dtype(out_dtype)
        np.testing.assert_array_equal(b["cube"][()], a["cube"][()])
