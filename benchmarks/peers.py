"""The peers on the same recording and grid: Acoular and pyroomacoustics, each made to produce what
our cube holds - one map per video frame over the 36 x 48 look points.

- Acoular (optional, ``pip install acoular``): ``TimeSamples`` of one frame -> ``PowerSpectra``
  (block 1024, rectangular window, one block) -> ``BeamformerBase`` with ``SteeringVector``
  ('true level') over an ``ImportGrid`` of our look points; the full 512-bin result is computed.
- pyroomacoustics: its DOA spatial spectra (SRP-PHAT, NormMUSIC) over the look directions of our
  pixels (far field: pyroomacoustics' DOA grid is a set of directions), from the frame's 1024-point
  spectrum.  They are timed on a subset of bins and extrapolated linearly to 512 - stated in the
  report.

Times are per frame; the real-time factor is ``1 / (12 * t)``.
"""

from __future__ import annotations

import time

import numpy as np

from acam.beamform import CameraGrid
from acam.beamform.sensor import SPEED_OF_SOUND



def _per_frame(fn, frames, repeats: int) -> list[float]:
    fn(frames[0])                                  # warm-up (JIT compilation, caches)
    out = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(frames[(i + 1) % len(frames)])
        out.append(time.perf_counter() - t0)
    return out


def acoular_frame(positions: np.ndarray, grid: CameraGrid, fs: float, n_bins: int):
    """A function frame (1024, M) -> (n_bins, n_pixels) power maps, with Acoular."""
    import acoular as ac

    ac.config.global_caching = "none"
    mics = ac.MicGeom(pos_total=positions.T.copy())
    g = ac.ImportGrid(pos=grid.look_points().reshape(-1, 3).T.copy())
    steer = ac.SteeringVector(grid=g, mics=mics, steer_type="inverse", ref=np.zeros(3))  # our formulation (II)

    def run(frame):
        ts = ac.TimeSamples(data=np.ascontiguousarray(frame, np.float64), sample_freq=fs)
        ps = ac.PowerSpectra(source=ts, block_size=max(128, 2 * n_bins), window="Rectangular", overlap="None",
                             cached=False)
        bb = ac.BeamformerBase(freq_data=ps, steer=steer, r_diag=False, cached=False)
        return bb.result[:]

    return run


def pra_frame(positions: np.ndarray, grid: CameraGrid, fs: float, n_bins: int, algorithm: str, bins):
    """A function frame (1024, M) -> spatial spectrum over the look directions, with
    pyroomacoustics' ``algorithm`` ('SRP' or 'NormMUSIC') on the given bins."""
    import pyroomacoustics as pra

    look = grid.look_points().reshape(-1, 3)
    az = np.arctan2(look[:, 1], look[:, 0])                 # pyroomacoustics: z is the colatitude axis
    col = np.arccos(look[:, 2] / np.linalg.norm(look, axis=1))
    doa = pra.doa.algorithms[algorithm](positions.T, fs, 2 * n_bins, c=SPEED_OF_SOUND, num_src=1, dim=3, n_grid=16)
    # pyroomacoustics makes a Cartesian product of given azimuths and colatitudes; our pixels are a
    # list of directions, so the grid and its mode vectors are set to exactly those
    doa.grid = pra.doa.GridSphere(spherical_points=np.vstack([az, col]))
    doa.mode_vec = pra.doa.ModeVector(doa.L, fs, 2 * n_bins, SPEED_OF_SOUND, doa.grid)

    def run(frame):
        X = np.fft.rfft(frame.T, n=2 * n_bins)[:, :, None]     # (M, F, 1 snapshot)
        doa.locate_sources(X, freq_bins=list(bins))
        return doa.grid.values

    return run


def measure(frames: np.ndarray, positions: np.ndarray, grid: CameraGrid, fs: float, n_bins: int,
            repeats: int = 2, pra_bins: int = 16) -> dict:
    """Per-frame seconds of each peer available here (extrapolated to ``n_bins`` where noted)."""
    out = {}
    try:
        import acoular  # noqa: F401

        out["acoular"] = {"seconds": _per_frame(acoular_frame(positions, grid, fs, n_bins), frames, repeats),
                          "bins_timed": n_bins, "extrapolated": False}
    except ImportError:
        out["acoular"] = None
    step = max(1, n_bins // pra_bins)
    bins = list(range(1, n_bins, step))[:pra_bins]
    for alg in ("SRP", "NormMUSIC"):
        t = _per_frame(pra_frame(positions, grid, fs, n_bins, alg, bins), frames, repeats)
        scale = n_bins / len(bins)
        out[f"pyroomacoustics_{alg}"] = {"seconds": [s * scale for s in t], "bins_timed": len(bins),
                                         "extrapolated": True}
    return out
