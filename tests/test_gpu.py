"""GPU parity: the same bodies on CuPy, compared with the CPU path (skipped without a GPU).

Tolerances, per precision, from errors measured on the CPU against float64 (tests/test_gpu_logic.py
and the figures below): a float32 cube is within 4.3e-6 of the double-precision one relative to each
(frame, bin) map's peak, so two float32 paths (CPU and GPU, other summation orders) may differ by
~1e-5: the limit is 1e-4.  Double precision: 1e-10.  MFCC in float32: 6.9e-7 of the largest
coefficient (1.1e-6 of each pixel's largest) against float64: the limit is 1e-5 of each pixel's
largest coefficient.  Outputs are poisoned with NaN first, so an unwritten cell fails.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from acam.beamform import ArrayGeometry, Beamformer, CameraGrid, SteeringSpec, default_array, write_raw
from acam.beamform.steering import steering_matrix

pytestmark = pytest.mark.gpu

TOL = {"single": 1e-4, "double": 1e-10}
DEAD_MIC = np.r_[np.ones(78), 0, np.ones(49)]


def map_err(got, ref) -> float:
    """max |got - ref| over each (frame, bin) map's peak |ref| (cubes of shape (frames, rows, cols, bins)
    or (frames, pixels, bins))."""
    import cupy as cp

    got, ref = cp.asnumpy(got).astype(float), np.asarray(ref, float)
    assert not np.isnan(got).any()
    axes = tuple(range(1, ref.ndim - 1))
    return float((np.abs(got - ref) / np.abs(ref).max(axis=axes, keepdims=True)).max())


@pytest.mark.parametrize("precision", ["single", "double"])
@pytest.mark.parametrize("n_bins, window", [(512, "hann"), (64, "boxcar"), (2048, "tukey:0.75")])
def test_gpu_matches_cpu(rng, precision, n_bins, window):
    import cupy as cp

    spec = SteeringSpec(default_array(), CameraGrid(), 12288.0, n_bins, weights=DEAD_MIC)
    frames = rng.standard_normal((5, 1024, 128))
    cpu = Beamformer(spec, 12.0, window, device="cpu", precision=precision).process(frames)
    gpu = Beamformer(spec, 12.0, window, device="cuda", precision=precision)
    out = cp.full(cpu.shape, cp.nan, gpu.real_dtype)
    gpu.process(cp.asarray(frames), out=out)
    assert map_err(out, cpu) <= TOL[precision]


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("chunk", [32, None])
def test_steered_power_at_odd_sizes(rng, dtype, chunk):
    """45 bins (a short last chunk of 32), 70 frames (3 tiles of 32), 3 segments per frame, against
    the formula in NumPy; chunk None is the GPU's own (every bin in one launch here)."""
    import cupy as cp

    from acam.beamform.filter_and_sum import steered_power

    real = np.float32 if dtype == np.complex64 else np.float64
    A, X = [(rng.standard_normal(s) + 1j * rng.standard_normal(s)).astype(dtype) for s in ((45, 7, 5), (45, 5, 210))]
    scale = rng.random(45).astype(real)
    ref = ((np.abs(A.astype(complex) @ X) ** 2).reshape(45, 7, 70, 3).sum(-1) * scale[:, None, None]).transpose(2, 1, 0)
    out = cp.full((70, 7, 45), cp.nan, real)
    steered_power(cp.asarray(A), cp.asarray(X), cp.asarray(scale), out, 3, chunk=chunk)
    assert map_err(out, ref) <= TOL["single" if dtype == np.complex64 else "double"]


@pytest.mark.parametrize("dtype, tol", [(np.complex64, 2.5e-7), (np.complex128, 1e-12)])
def test_gpu_steering_matches_cpu(dtype, tol):
    """The phase is formed in double precision on both devices: complex64 matrices agree to about one
    float32 ulp of the largest value (a float32 phase would be 2.9e-6 off: tests/test_gpu_logic.py)."""
    import cupy as cp

    spec = SteeringSpec(ArrayGeometry(default_array().positions), CameraGrid(9, 12), 12288.0, 512)
    a = steering_matrix(spec, np, dtype)
    b = cp.asnumpy(steering_matrix(spec, cp, dtype))
    assert b.dtype == dtype
    assert np.abs(b - a).max() <= tol * np.abs(a).max()


def test_lowrank_on_the_gpu_equals_the_cpu(rng, tmp_path, monkeypatch):
    """The GPU's padded strided-batched low-rank product against the CPU's per-bin one (factors made
    once on the CPU and cached), same ranks, same cubes."""
    import cupy as cp

    from acam.beamform.lowrank import cache_path

    monkeypatch.setenv("ACAM_CACHE", str(tmp_path))
    spec = SteeringSpec(default_array(), CameraGrid(), 12288.0, 100, weights=DEAD_MIC)
    frames = rng.standard_normal((40, 1024, 128))
    cpu = Beamformer(spec, 12.0, "hann", device="cpu", tolerance=1e-3)
    gpu = Beamformer(spec, 12.0, "hann", device="cuda", tolerance=1e-3)
    want = cpu.process(frames)
    got = gpu.process(cp.asarray(frames))
    assert os.path.isfile(cache_path(spec, 1e-3, np.complex64)[1])
    np.testing.assert_array_equal(gpu.lowrank.ranks, cpu.lowrank.ranks)
    assert map_err(got, want) <= TOL["single"]


@pytest.mark.parametrize("out_dtype", ["float32", "float16"])
@pytest.mark.parametrize("tolerance", [0.0, 1e-3])
def test_whole_file_on_the_gpu_equals_the_cpu(rng, tmp_path, monkeypatch, out_dtype, tolerance):
    """42 frames in blocks of 16 (a short last block) through the GPU's three streams, pinned host
    buffers and (float16) conversion on the device, against the CPU's serial loop."""
    from acam.beamform.io import Cube
    from acam.beamform.pipeline import RunSettings, beamform_file

    monkeypatch.setenv("ACAM_CACHE", str(tmp_path))
    raw = tmp_path / "r.h5"
    write_raw(raw, rng.standard_normal((42 * 1024 + 500, 128)).astype(np.float32), 12288.0, default_array().positions)
    cubes = {}
    for dev in ("cpu", "cuda"):
        beamform_file(raw, tmp_path / f"{dev}.h5", RunSettings(bins=100, rows=12, cols=16, device=dev, block_frames=16,
                                                            window="tukey:0.75", out_dtype=out_dtype,
                                                            tolerance=tolerance))
        with Cube.open(tmp_path / f"{dev}.h5") as c:
            cubes[dev] = c.cube[()]
    assert cubes["cuda"].dtype == np.dtype(out_dtype) and cubes["cuda"].shape == (42, 12, 16, 100)
    err = map_err(cubes["cuda"], cubes["cpu"])
    assert err <= (TOL["single"] if out_dtype == "float32" else 2.0 ** -10 + TOL["single"])


def test_downloads_copy_every_block_to_pinned_buffers(rng):
    import cupy as cp

    from acam.beamform import backend
    from acam.beamform.io import aligned_empty

    host = [aligned_empty((4, 3, 5), np.float16) for _ in range(2)]
    blocks = [rng.standard_normal((4 if i < 4 else 2, 3, 5)).astype(np.float32) for i in range(5)]
    with backend.pinned(*host) as ok:
        assert ok
        down = backend.Downloads(host, np.float32)
        for i, b in enumerate(blocks):
            with down.compute:
                down.target(i, len(b))[...] = cp.asarray(b)
            down.start(i, len(b)).synchronize()
            np.testing.assert_array_equal(host[i % 2][: len(b)], b.astype(np.float16))


def test_gpu_mfcc_matches_the_cpu(rng):
    import cupy as cp

    from acam.dataset import mfcc as M

    spec = SteeringSpec(default_array(), CameraGrid(6, 8), 12288.0, 512)
    cube = Beamformer(spec, 12.0, "tukey:0.75", device="cpu").process(rng.standard_normal((8, 1024, 128)))
    bin_hz, factor = M.cube_mfcc_settings({"nfft": 1024, "n_bins": 512, "window": "tukey:0.75", "frame_len": 1024})
    want = M.mfcc(cube, bin_hz, factor)
    got = M.mfcc(cp.asarray(cube), bin_hz, factor)
    assert isinstance(got, cp.ndarray) and got.shape == (8, 6, 8, 12)
    scale = np.abs(want).max(axis=-1, keepdims=True)
    assert (np.abs(cp.asnumpy(got) - want) / scale).max() <= 1e-5


def test_mfcc_cli_on_the_gpu(rng, tmp_path):
    import h5py
    from click.testing import CliRunner

    from acam.cli import beamform_group, dataset_group
    from acam.dataset import mfcc as M

    raw, cube, out = tmp_path / "r.h5", tmp_path / "c.h5", tmp_path / "m.h5"
    write_raw(raw, rng.standard_normal((2048, 128)).astype(np.float32), 12288.0, default_array().positions)
    assert CliRunner().invoke(beamform_group, ["run", str(raw), "-o", str(cube), "--rows", "6", "--cols", "8",
                                               "--window", "tukey:0.75", "--device", "cuda"]).exit_code == 0
    r = CliRunner().invoke(dataset_group, ["mfcc", str(cube), "-o", str(out), "--device", "cuda"])
    assert r.exit_code == 0, r.output
    with h5py.File(out) as f, h5py.File(cube) as c:
        bin_hz, factor = M.cube_mfcc_settings(dict(c.attrs))
        want = M.mfcc(c["cube"][()], bin_hz, factor)
        got = f["mfcc"][()]
    assert (np.abs(got - want) / np.abs(want).max(axis=-1, keepdims=True)).max() <= 1e-5


def test_workers_sharing_the_gpu_are_refused(tmp_path, rng):
    from acam.beamform import backend
    from acam.beamform.batch import beamform_many
    from acam.beamform.pipeline import RunSettings
    from acam.core.errors import AcamError

    with pytest.raises(AcamError, match="would share"):
        beamform_many([str(tmp_path / "r.h5")], str(tmp_path), RunSettings(device="cuda"),
                      workers=backend.gpu_count() + 1)


@pytest.mark.slow
@pytest.mark.filterwarnings("default:.*deterministic")   # an op without a deterministic kernel: shown, then judged
def test_training_on_cuda_repeats_for_a_seed(tmp_path, request):
    """Two runs with one seed on CUDA give the same weights (deterministic cuDNN/cuBLAS algorithms)."""
    pytest.importorskip("pyroomacoustics")           # the tiny dataset is simulated
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA GPU")
    tiny_dataset = request.getfixturevalue("tiny_dataset")
    from acam.learn.train import TrainConfig, fit

    for run in ("a", "b"):
        fit(TrainConfig(model="hearnet", data=str(tiny_dataset), train_on=[1], epochs=2, batch_size=8, lr=1e-3,
                         seed=0, crops_per_sequence=2, device="cuda"), str(tmp_path / run))
    a, b = (torch.load(tmp_path / r / "last.pt", map_location="cpu", weights_only=False) for r in "ab")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["history"][-1]["loss"] == b["history"][-1]["loss"]
