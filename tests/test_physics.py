"""The beamformer on pyroomacoustics recordings: localisation, resolution, reverberation, level."""

from __future__ import annotations

import numpy as np
import pytest

from acam.beamform import Beamformer, CameraGrid, SteeringSpec, default_array
from conftest import recording

BAND = (900.0, 6400.0)


def band_map(rec: dict, grid: CameraGrid, n_bins: int = 128, band=BAND) -> np.ndarray:
    """Band-summed map averaged over all frames: (rows, cols)."""
    spec = SteeringSpec(default_array(), grid, rec["sample_freq"], n_bins)
    bf = Beamformer(spec, 12.0, device="cpu")
    n = rec["time_data"].shape[0] // bf.frame_len
    frames = rec["time_data"][: n * bf.frame_len].reshape(n, bf.frame_len, -1)
    cube = bf.process(frames)
    f = spec.frequencies()
    sel = (f >= band[0]) & (f <= band[1])
    return cube[..., sel].sum(-1).mean(0)


def peak(m: np.ndarray) -> tuple[int, int]:
    return tuple(int(i) for i in np.unravel_index(np.argmax(m), m.shape))


# nine positions over the field of view (60 x 45 degrees) at 2-4 m
POSITIONS = [(x * z, y * z, z) for (x, y, z) in [
    (-0.45, 0.32, 2.0), (0.0, 0.33, 3.0), (0.45, 0.3, 4.0),
    (-0.4, 0.0, 3.5), (0.02, -0.01, 2.5), (0.42, 0.05, 2.2),
    (-0.46, -0.3, 4.0), (0.05, -0.33, 2.0), (0.44, -0.32, 3.0)]]


@pytest.mark.parametrize("pos", POSITIONS)
def test_broadband_source_peaks_at_its_pixel(pos):
    grid = CameraGrid()
    rec = recording(((pos, "noise"),))
    row, col = peak(band_map(rec, grid))
    want = grid.pixel_of(pos)
    assert abs(row - want[0]) <= 1 and abs(col - want[1]) <= 1, (pos, (row, col), want)


def test_two_incoherent_sources_are_resolved_at_high_frequency():
    grid = CameraGrid()
    look = grid.look_points()
    a, b = look[18, 19], look[18, 27]          # eight pixels (11 degrees) apart, 2 m away
    rec = recording(((tuple(a), "noise"), (tuple(b), "noise")), seed=3)
    row = band_map(rec, grid, band=(5000.0, 6000.0))[18]
    db = 10 * np.log10(row / row.max())
    left, right = int(np.argmax(db[:23])), 23 + int(np.argmax(db[23:]))
    assert abs(left - 19) <= 1 and abs(right - 27) <= 1
    dip = db[left:right + 1].min()
    assert dip < min(db[left], db[right]) - 3.0       # a clear valley between the two peaks


def test_source_is_still_the_peak_in_a_reverberant_room():
    grid = CameraGrid()
    pos = (0.7, 0.2, 2.5)
    rec = recording(((pos, "noise"),), room="shoebox", duration=0.75, max_order=10)
    row, col = peak(band_map(rec, grid))
    want = grid.pixel_of(pos)
    assert abs(row - want[0]) <= 1 and abs(col - want[1]) <= 1


@pytest.mark.parametrize("kind", ["noise", "tone"])
def test_power_convention_free_field(kind):
    """A source on a look point reads the power it makes at the array centre (within 1 dB)."""
    grid = CameraGrid()
    pos = tuple(grid.look_points()[10, 30])
    rec = recording(((pos, kind),), extra=((0.0, 0.0, 0.0),))
    n_bins = 512
    spec = SteeringSpec(default_array(), grid, rec["sample_freq"], n_bins)
    bf = Beamformer(spec, 12.0, device="cpu", precision="double")
    n = rec["time_data"].shape[0] // bf.frame_len
    frames = rec["time_data"][: n * bf.frame_len].reshape(n, bf.frame_len, -1).astype(np.float64)
    cube = bf.process(frames)
    level = cube[:, 10, 30, :].sum(-1).mean()          # all bins: the whole mean square
    centre = rec["extra"][: n * bf.frame_len, 0]
    expected = np.mean(centre ** 2)
    assert abs(10 * np.log10(level / expected)) < 1.0


def test_diffuse_noise_has_the_spherical_coherence(rng):
    """Spherically isotropic noise: coherence between two points d apart is sinc(2 f d / c)."""
    import scipy.signal

    from acam.beamform.simulate import diffuse_noise

    fs, d = 12288.0, 0.06
    x = diffuse_noise(np.array([[0.0, 0, 0], [d, 0, 0]]), 12288 * 8, fs, rng, n_waves=512)
    f, pxy = scipy.signal.csd(x[:, 0], x[:, 1], fs, nperseg=256)
    _, pxx = scipy.signal.welch(x[:, 0], fs, nperseg=256)
    _, pyy = scipy.signal.welch(x[:, 1], fs, nperseg=256)
    coh = np.real(pxy) / np.sqrt(pxx * pyy)
    sel = (f > 200) & (f < 5500)
    np.testing.assert_allclose(coh[sel], np.sinc(2 * f[sel] * d / 343.0), atol=0.1)


def test_shoebox_with_absorption_and_noise_still_localises():
    from acam.beamform.simulate import Scene, SourceSpec, simulate

    grid = CameraGrid()
    pos = (-0.5, -0.2, 2.2)
    rec = simulate(Scene((SourceSpec(pos, "noise"),), duration=0.5, room="shoebox", absorption=0.4,
                         max_order=6, noise_snr=0.0, seed=2))
    row, col = peak(band_map(rec, grid))
    want = grid.pixel_of(pos)
    assert abs(row - want[0]) <= 1 and abs(col - want[1]) <= 1


@pytest.fixture(scope="module")
def lowrank_cache(tmp_path_factory):
    import os

    old = os.environ.get("ACAM_CACHE")
    os.environ["ACAM_CACHE"] = str(tmp_path_factory.mktemp("acam-cache"))
    yield os.environ["ACAM_CACHE"]
    if old is None:
        del os.environ["ACAM_CACHE"]
    else:
        os.environ["ACAM_CACHE"] = old


@pytest.mark.parametrize("tol", [1e-2, 1e-3, 1e-4])
def test_lowrank_stays_within_its_error_bound(tol, lowrank_cache):
    """Against the exact path on pyroomacoustics recordings: on pixels within 30 dB of each map's peak
    the amplitude error stays under tolerance * s_1(A_k) * ||x_k||, and the peak pixel never moves."""
    from acam.beamform.filter_and_sum import frame_spectra

    grid = CameraGrid()
    rec = recording((((0.4, 0.2, 2.5), "noise"), ((-0.6, -0.3, 3.0), "tone")), seed=4)
    spec = SteeringSpec(default_array(), grid, rec["sample_freq"], 256)
    exact = Beamformer(spec, 12.0, device="cpu", precision="double")
    lowr = Beamformer(spec, 12.0, device="cpu", precision="double", tolerance=tol)
    frames = rec["time_data"][: 6 * 1024].reshape(6, 1024, -1).astype(np.float64)
    a, b = exact.process(frames), lowr.process(frames)
    X = frame_spectra(frames, None, spec.nfft, spec.n_bins, exact.n_segments)      # (K, M, cols)
    xnorm = np.linalg.norm(X, axis=1).T.reshape(6, exact.n_segments, -1).max(1)   # (frames, K)
    scale = np.asarray(exact.scale)
    amp_a, amp_b = np.sqrt(a / scale), np.sqrt(b / scale)
    bound = tol * lowr.lowrank.s1[None, :] * xnorm                                  # (frames, K)
    near_peak = a >= a.max(axis=(1, 2), keepdims=True) * 1e-3
    err = np.abs(amp_a - amp_b)
    assert np.all(err[near_peak] <= np.broadcast_to(bound[:, None, None, :], a.shape)[near_peak] * (1 + 1e-6))
    # where the map has a peak (above 1.5 kHz the main lobe is narrower than the view; below it
    # the map is a plateau whose top pixel is arbitrary), the peak never moves at 1e-3 and below
    # (at 1e-2 two near-equal pixels can swap: the error bound is larger than their difference)
    if tol > 1e-3:
        return
    for t in range(6):
        for k in range(32, 256):
            assert np.argmax(a[t, ..., k]) == np.argmax(b[t, ..., k]), (t, k)
    assert lowr.lowrank.ranks.max() < 128            # the point: fewer components than microphones


def test_lowrank_tolerance_zero_is_the_exact_path_and_the_cache_is_used(lowrank_cache):
    import os

    spec = SteeringSpec(default_array(), CameraGrid(9, 12), 12288.0, 64)
    frames = np.random.default_rng(0).standard_normal((2, 1024, 128))
    exact = Beamformer(spec, 12.0, device="cpu", tolerance=0.0)
    a = exact.process(frames)
    assert exact.lowrank is None                     # no factorisation at tolerance 0
    ref = Beamformer(spec, 12.0, device="cpu", precision="double").process(frames)
    assert np.abs(a - ref).max() <= 1e-5 * np.abs(ref).max()   # the exact single-precision path
    lr = Beamformer(spec, 12.0, device="cpu", tolerance=1e-3)
    lr.prepare()
    files = [f for f in os.listdir(lowrank_cache) if f.startswith("lowrank-")]
    assert len(files) >= 1
    again = Beamformer(spec, 12.0, device="cpu", tolerance=1e-3)
    again.prepare()
    assert again._steering is None                  # factors came from the cache, no matrix was built
    np.testing.assert_array_equal(again.lowrank.ranks, lr.lowrank.ranks)
