"""GPU parity: the same bodies on CuPy, compared with the CPU path (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from acam.beamform import ArrayGeometry, Beamformer, CameraGrid, SteeringSpec, default_array
from acam.beamform.steering import steering_matrix

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision, tol", [("single", 1e-4), ("double", 1e-10)])
@pytest.mark.parametrize("n_bins", [512, 64, 2048])
def test_gpu_matches_cpu(rng, precision, tol, n_bins):
    import cupy as cp

    spec = SteeringSpec(default_array(), CameraGrid(), 12288.0, n_bins,
                        weights=np.r_[np.ones(78), 0, np.ones(49)])
    frames = rng.standard_normal((5, 1024, 128))
    cpu = Beamformer(spec, 12.0, "hann", device="cpu", precision=precision).process(frames)
    gpu = Beamformer(spec, 12.0, "hann", device="cuda", precision=precision).process(cp.asarray(frames))
    gpu = cp.asnumpy(gpu)
    peak = np.abs(cpu).max(axis=(1, 2), keepdims=True)
    assert np.abs(gpu - cpu).max(axis=(1, 2), keepdims=True).max() <= tol * peak.max()
    assert (np.abs(gpu - cpu) / peak).max() <= tol


def test_gpu_steering_matches_cpu():
    import cupy as cp

    spec = SteeringSpec(ArrayGeometry(default_array().positions[:32]), CameraGrid(9, 12), 12288.0, 512)
    a = steering_matrix(spec, np, np.complex128)
    b = cp.asnumpy(steering_matrix(spec, cp, np.complex128))
    np.testing.assert_allclose(b, a, atol=1e-12)
