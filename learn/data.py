"""PyTorch datasets over :mod:`dataset.store` crops, one per input kind, with the authors' preprocessing.

Inputs (``INPUTS``; a model's ``modality`` names its default, a control replaces it):

| input | fields read | tensor per crop |
|---|---|---|
| ``mfcc`` | ``mfcc`` | (T, 36, 48, 12) float32 MFCC frames, raw (DualCamNet standardises inside when asked) |
| ``mfcc_mono`` | ``mono`` | control: the single microphone's MFCC per frame, the same 12 values at every pixel |
| ``video`` | ``video`` | (T, 3, H, W) uint8 (the model scales and, pretrained, resizes) |
| ``av`` | both | (mfcc, video) |
| ``spectrogram`` | ``mono`` | (500, 257) HearNet's STFT magnitude (:func:`hearnet_spectrogram`) |
| ``spectrogram_beam`` | ``beam`` | control: the same from the delay-and-sum signal steered at the source |
| ``waveform`` | ``mono`` | (110 250,) SoundNet's waveform (:func:`student_waveform`) |

The students' path is the authors' (``codebase/data/actions_data.py``): the crop's samples are
peak-normalised, resampled 12 288 -> 22 050 Hz, peak-normalised again and scaled by 256 (range
[-256, 256]).  HearNet then takes the magnitude of a short-time Fourier transform with a periodic
Hann window of 440 samples, hop 220, FFT 512, **no centring or padding** (TF's ``tf.signal.stft``):
frame t covers samples [220 t, 220 t + 440), 500 frames for 5 s; the model scales each frequency
with the training set's minimum and maximum.  (Resampling is SciPy's polyphase filter where the
authors used librosa's ``kaiser_best``: a difference in the last percent of the band.)
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from acam.core.errors import AcamError
from acam.dataset.mfcc import LAB_RATE, mfcc
from acam.beamform.sensor import IMAGE_COLS, IMAGE_ROWS, SAMPLE_FREQ
from acam.dataset.store import Crop, Dataset, read_crop

STUDENT_RATE = 22050
HEARNET_FRAMES = 500
STFT_WINDOW, STFT_HOP, STFT_FFT = 440, 220, 512
PEAK = 256.0
IMAGE = (IMAGE_ROWS, IMAGE_COLS)          # the mono control's tiling


def peak_normalise(x: np.ndarray) -> np.ndarray:
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    return x / m if m > 0 else x


def resample_to_student(x: np.ndarray, fs: float) -> np.ndarray:
    import scipy.signal

    g = math.gcd(int(fs), STUDENT_RATE)
    return scipy.signal.resample_poly(x, STUDENT_RATE // g, int(fs) // g)


def student_waveform(x: np.ndarray, fs: float, seconds: float) -> np.ndarray:
    """The authors' student waveform of a crop: peak-normalise, resample to 22 050 Hz, zero-pad or cut
    to ``seconds``, peak-normalise again, x 256.  Returns float32 [shape=(round(seconds * 22050),)]."""
    w = resample_to_student(peak_normalise(np.asarray(x, np.float64)), fs)
    n = int(round(seconds * STUDENT_RATE))
    w = np.pad(w, (0, max(0, n - len(w))))[:n]
    return (peak_normalise(w) * PEAK).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    n = np.arange(STFT_WINDOW)
    return 0.5 - 0.5 * np.cos(2 * np.pi * n / STFT_WINDOW)          # periodic


def hearnet_spectrogram(w: np.ndarray) -> np.ndarray:
    """|STFT| as TF's ``stft(frame_length=440, frame_step=220, fft_length=512)``: no centring, periodic
    Hann, each frame zero-padded to 512 -> [shape=(500, 257)] float32 (cut or zero-padded to 500
    frames, which 5 s at 22 050 Hz gives exactly)."""
    w = np.asarray(w, np.float64)
    if len(w) < STFT_WINDOW:
        w = np.pad(w, (0, STFT_WINDOW - len(w)))
    frames = np.lib.stride_tricks.sliding_window_view(w, STFT_WINDOW)[::STFT_HOP]
    spec = np.abs(np.fft.rfft(frames * _hann(), STFT_FFT, axis=-1))
    out = np.zeros((HEARNET_FRAMES, STFT_FFT // 2 + 1), np.float32)
    n = min(HEARNET_FRAMES, len(spec))
    out[:n] = spec[:n]
    return out


def mono_mfcc(x: np.ndarray, frame_len: int, window: str = "tukey:0.75") -> np.ndarray:
    """The single microphone's MFCC per frame, as each pixel's in the dataset's cubes (lab units:
    the windowed frame's ``|rfft|^2``, Nyquist dropped, the lab's 12.5 Hz bin spacing).
    [shape=(n_frames, 12)] float32."""
    from acam.beamform.filter_and_sum import parse_window

    frames = np.asarray(x, np.float64).reshape(-1, frame_len) * parse_window(window, frame_len)
    power = np.abs(np.fft.rfft(frames, frame_len, axis=-1))[:, :frame_len // 2] ** 2
    return np.asarray(mfcc(power, LAB_RATE / frame_len), np.float32)


def _frame_len(crop: Crop, got: dict, key: str) -> int:
    return len(got[key]) // crop.n_frames


def _mfcc(crop, got, ctx):
    return torch.from_numpy(np.asarray(got["mfcc"], np.float32))


def _mfcc_mono(crop, got, ctx):
    m = mono_mfcc(got["mono"], _frame_len(crop, got, "mono"), ctx["window"])
    return torch.from_numpy(np.ascontiguousarray(np.broadcast_to(m[:, None, None, :], (len(m),) + IMAGE + (12,))))


def _video(crop, got, ctx):
    return torch.from_numpy(np.ascontiguousarray(got["video"])).permute(0, 3, 1, 2)


def _waveform(field):
    def make(crop, got, ctx):
        return torch.from_numpy(student_waveform(got[field], ctx["fs"], crop.n_frames / ctx["frame_rate"]))
    return make


def _spectrogram(field):
    def make(crop, got, ctx):
        w = student_waveform(got[field], ctx["fs"], crop.n_frames / ctx["frame_rate"])
        return torch.from_numpy(hearnet_spectrogram(w))
    return make


INPUTS = {
    "mfcc": (("mfcc",), _mfcc),
    "mfcc_mono": (("mono",), _mfcc_mono),
    "video": (("video",), _video),
    "av": (("mfcc", "video"), lambda c, g, x: (_mfcc(c, g, x), _video(c, g, x))),
    "spectrogram": (("mono",), _spectrogram("mono")),
    "spectrogram_beam": (("beam",), _spectrogram("beam")),
    "waveform": (("mono",), _waveform("mono")),
}


class CropDataset(torch.utils.data.Dataset):
    """Crops as tensors of one input kind; items ``(x, label, index)``.

    Parameters
    ----------
    data : Dataset
    modality : str
        A key of :data:`INPUTS`.
    crops : list[Crop]
    cache : bool
        Keep every item in memory after its first read (training sets, read every epoch).
    """

    def __init__(self, data: Dataset, modality: str, crops: list[Crop], cache: bool = True):
        if modality not in INPUTS:
            raise AcamError(f"input {modality!r} is not one of {', '.join(INPUTS)}")
        self.data, self.modality, self.crops = data, modality, crops
        self.fields, self.make = INPUTS[modality]
        self.ctx = {"fs": float(data.manifest.get("sample_freq", SAMPLE_FREQ)), "frame_rate": data.frame_rate,
                    "window": str(data.manifest.get("window", "tukey:0.75"))}
        self._cache = {} if cache else None

    def __len__(self):
        return len(self.crops)

    def item(self, i: int):
        c = self.crops[i]
        return self.make(c, read_crop(c, self.fields), self.ctx)

    def __getitem__(self, i):
        if self._cache is not None and i in self._cache:
            x = self._cache[i]
        else:
            x = self.item(i)
            if self._cache is not None:
                self._cache[i] = x
        return x, self.crops[i].action, i


def input_stats(kind: str | None, ds: CropDataset) -> dict | None:
    """Training-set statistics a model normalises with (``stats_kind``), as plain lists:
    ``minmax`` per frequency over every frame of every crop (HearNet, as the authors'
    ``compute_stats.py``), ``standard`` mean and standard deviation per coefficient (DualCamNet)."""
    if kind is None:
        return None
    if kind not in STATS:
        raise AcamError(f"statistics {kind!r} are not one of {', '.join(STATS)}")
    return STATS[kind](ds)


def _items(ds: CropDataset):
    for i in range(len(ds)):
        x = ds[i][0]
        yield (x[0] if isinstance(x, tuple) else x).double()


def _minmax(ds: CropDataset) -> dict:
    lo = hi = None
    for x in _items(ds):
        x = x.reshape(-1, x.shape[-1])
        lo = x.amin(0) if lo is None else torch.minimum(lo, x.amin(0))
        hi = x.amax(0) if hi is None else torch.maximum(hi, x.amax(0))
    if lo is None:
        raise AcamError("no training windows to take input statistics from")
    return {"min": lo.float().tolist(), "max": hi.float().tolist()}


def _standard(ds: CropDataset) -> dict:
    s1 = s2 = 0.0
    n = 0
    for x in _items(ds):
        x = x.reshape(-1, x.shape[-1])
        s1, s2, n = s1 + x.sum(0), s2 + (x ** 2).sum(0), n + len(x)
    if n == 0:
        raise AcamError("no training windows to take input statistics from")
    mean = s1 / n
    std = (s2 / n - mean ** 2).clamp_min(1e-12).sqrt()
    return {"mean": mean.float().tolist(), "std": std.float().tolist()}


STATS = {"minmax": _minmax, "standard": _standard}


def collate(batch):
    xs, ys, idx = zip(*batch)
    if isinstance(xs[0], tuple):
        x = tuple(torch.stack(parts) for parts in zip(*xs))
    else:
        x = torch.stack(xs)
    return x, torch.tensor(ys), torch.tensor(idx)
