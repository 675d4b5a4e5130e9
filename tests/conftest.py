"""Shared fixtures: seeded generators and cached pyroomacoustics recordings."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from acam.beamform import backend
from acam.beamform.simulate import Scene, SourceSpec, simulate


def pytest_collection_modifyitems(config, items):
    if not backend.gpu_available():
        skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU")
        for item in items:
            if item.get_closest_marker("gpu") is not None:   # the marker, not a name (a folder named gpu)
                item.add_marker(skip)


@pytest.fixture
def rng():
    """A fresh seeded generator per test (never a module-level seed)."""
    return np.random.default_rng(1234)


@functools.lru_cache(maxsize=None)
def recording(sources: tuple, room: str = "anechoic", duration: float = 0.5, seed: int = 0,
              extra: tuple | None = None, max_order: int | None = None) -> dict:
    """A cached simulation (tests share them; pyroomacoustics is the slow part)."""
    scene = Scene(sources=tuple(SourceSpec(tuple(p), k) for p, k in sources), duration=duration,
                  room=room, seed=seed, max_order=max_order)
    return simulate(scene, extra_points=None if extra is None else np.array(extra))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The tiny preset, built once per test session (about 30 s on 2 cores)."""
    from acam.dataset.build import build

    folder = tmp_path_factory.mktemp("tiny")
    build(folder, "tiny", seed=0, device="cpu")
    return folder
