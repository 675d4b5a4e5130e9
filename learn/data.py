"""PyTorch datasets over :mod:`dataset.store` crops, one per input modality.

Inputs per model family (crop lengths as the paper: teachers 1 s x 30 crops per sequence, students
5 s x 6 crops per sequence; fixed-seed crop positions):

- ``mfcc``: (T, 36, 48, 12) float32 MFCC frames, standardised per coefficient with training-set
  statistics (computed once per dataset and split, stored in the checkpoint).
- ``video``: (T, 3, H, W) float32 in [0, 1].
- ``av``: both.
- ``spectrogram`` (HearNet): the mono track resampled 12 288 -> 22 050 Hz, |STFT| with a 440-sample
  window, hop 220, FFT 512 -> (500, 257), cropped or zero-padded to 500 frames explicitly.
- ``waveform`` (SoundNet-5): the mono track resampled to 22 050 Hz, 110 250 samples (5 s).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from acam.dataset.store import Crop, Dataset, read_crop
from acam.beamform.sensor import SAMPLE_FREQ

STUDENT_RATE = 22050
HEARNET_FRAMES = 500


def resample_to_student(x: np.ndarray, fs: float) -> np.ndarray:
    import scipy.signal

    g = math.gcd(int(fs), STUDENT_RATE)
    return scipy.signal.resample_poly(x, STUDENT_RATE // g, int(fs) // g).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _stft_window():
    return torch.hann_window(440, periodic=True)


def spectrogram(wave: np.ndarray) -> np.ndarray:
    """HearNet's input: |STFT| (window 440, hop 220, FFT 512) -> (500, 257), cropped or padded."""
    spec = torch.stft(torch.from_numpy(np.ascontiguousarray(wave)), 512, 220, 440, _stft_window(),
                      center=True, return_complex=True).abs().T            # (frames, 257)
    out = torch.zeros(HEARNET_FRAMES, 257)
    n = min(HEARNET_FRAMES, spec.shape[0])
    out[:n] = spec[:n]
    return out.numpy()


def _mono_input(crop: Crop, kind: str, fs: float) -> np.ndarray:
    x = read_crop(crop, ("mono",))["mono"].astype(np.float64)
    w = resample_to_student(x, fs)
    n = int(round(crop.n_frames / 12.0 * STUDENT_RATE))
    w = np.pad(w, (0, max(0, n - len(w))))[:n]
    return spectrogram(w) if kind == "spectrogram" else w


class CropDataset(torch.utils.data.Dataset):
    """Crops of a dataset split as tensors for one modality.

    Parameters
    ----------
    data : Dataset
    modality : str
        ``mfcc``, ``video``, ``av``, ``spectrogram`` or ``waveform``.
    crops : list[Crop]
    mfcc_stats : (mean, std) arrays of shape (12,), or None
    """

    def __init__(self, data: Dataset, modality: str, crops: list[Crop], mfcc_stats=None, cache: bool = True):
        self.data, self.modality, self.crops = data, modality, crops
        self.mfcc_stats = mfcc_stats
        self.fs = float(data.manifest.get("sample_freq", SAMPLE_FREQ))
        self._cache = {} if cache else None

    def __len__(self):
        return len(self.crops)

    def item(self, i: int):
        c = self.crops[i]
        if self.modality in ("spectrogram", "waveform"):
            return torch.from_numpy(_mono_input(c, self.modality, self.fs))
        fields = {"mfcc": ("mfcc",), "video": ("video",), "av": ("mfcc", "video")}[self.modality]
        got = read_crop(c, fields)
        out = []
        if "mfcc" in got:
            m = got["mfcc"].astype(np.float32)
            if self.mfcc_stats is not None:
                m = (m - self.mfcc_stats[0]) / self.mfcc_stats[1]
            out.append(torch.from_numpy(m))
        if "video" in got:
            out.append(torch.from_numpy(got["video"]).permute(0, 3, 1, 2).float() / 255.0)
        return out[0] if len(out) == 1 else tuple(out)

    def __getitem__(self, i):
        if self._cache is not None and i in self._cache:
            x = self._cache[i]
        else:
            x = self.item(i)
            if self._cache is not None:
                self._cache[i] = x
        return x, self.crops[i].action, i


def mfcc_stats(data: Dataset, split: str = "train", scenarios=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and standard deviation of the MFCC frames of a split."""
    import h5py

    s1 = np.zeros(12)
    s2 = np.zeros(12)
    n = 0
    for s in data.select(split, scenarios):
        with h5py.File(data.path(s)) as f:
            m = f["mfcc"][()].astype(np.float64).reshape(-1, 12)
        s1 += m.sum(0)
        s2 += (m ** 2).sum(0)
        n += len(m)
    if n == 0:
        return np.zeros(12, np.float32), np.ones(12, np.float32)
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 1e-12))
    return mean.astype(np.float32), std.astype(np.float32)


def collate(batch):
    xs, ys, idx = zip(*batch)
    if isinstance(xs[0], tuple):
        x = tuple(torch.stack(parts) for parts in zip(*xs))
    else:
        x = torch.stack(xs)
    return x, torch.tensor(ys), torch.tensor(idx)
