"""The MFCC pieces against outside implementations: the mel filterbank against librosa's (HTK mel
scale, no normalisation), the DCT against scipy.fft.dct."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from acam.dataset import mfcc as M


def test_mel_filterbank_equals_librosa_htk():
    librosa = pytest.importorskip("librosa")
    # the lab's recipe: 24 filters over 0-6400 Hz, filter edges placed as for a 12 800 Hz rate
    ref = librosa.filters.mel(sr=12800, n_fft=1024, n_mels=24, fmin=0.0, fmax=6400.0, htk=True, norm=None,
                              dtype=np.float64)[:, :512].T
    ours = M.mel_filterbank(512, 12800.0 / 1024)
    assert ours.shape == ref.shape == (512, 24)
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_dct_matrix_equals_scipy_dct_with_the_lifter():
    e = np.random.default_rng(3).standard_normal((7, 24))
    lift = 1 + 11 * np.sin(np.pi * np.arange(1, 13) / 22)
    ref = scipy.fft.dct(e, type=2, norm="ortho", axis=-1)[:, 1:13] * lift
    np.testing.assert_allclose(e @ M.dct_matrix(), ref, rtol=1e-12, atol=1e-12)
