"""Sound propagation of physics version 2: image sources, a diffuse reverberant tail, diffuse fields.

Why not pyroomacoustics' ray tracing (the issue's suggestion)?  Its hybrid simulator draws the late
part of every room impulse response as an independent random sequence per microphone, so the
reverberation is spatially *white* across the array: a 128-microphone beamformer would suppress it by
up to 10 lg 126 = 21 dB, an advantage no real diffuse field gives (its coherence between two points
d apart is sinc(k d)).  Its Python loop over microphones is also slow (about 1.6 s per source for
128 microphones at image order 10 on this machine).  So the office is rendered as

* **early part**: every image source of the shoebox closer than ``c * ism_until`` (0.05 s: about
  2.7 times the mixing time sqrt(V) ms of Polack 1988), exact spherical waves to every
  microphone, octave-band wall absorption and air absorption (Allen & Berkley 1979); ``free`` and
  ``ground`` rooms are the same code with no walls / the floor only;
* **late part**: a diffuse reverberant field (Lehmann & Johansson 2010 model the tail the same
  way): plane waves from 64 directions spread over the sphere, each carrying independent noise whose
  expected power follows the statistical-room envelope of the source,
  ``E[h^2](t) = 4 pi c / V * exp(-13.8 t / T60(f))`` per second for a source whose free-field
  pressure at 1 m is the signal (Kuttruff, Room Acoustics: this integrates to the classic
  reverberant-to-direct ratio 312 T / V at 1 m), with T60 per octave band from Eyring's formula
  and the room's materials.  Its coherence across the array is that of a diffuse field.

Diffuse noise (ambience) uses the same plane-wave machinery, spherical (office) or horizontal
(outdoors).  Processing is on 512-sample frames with hop 256 and a square-root Hann window (perfect
reconstruction), in blocks of frames so memory stays bounded.

Frames: array frame x right, y up, z forward; a room's coordinates have z up and the array, at
``Room.array_at``, faces the room's +y axis (array x -> room x, array z -> room y, array y -> room z).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from threadpoolctl import threadpool_limits

from acam.beamform.sensor import SPEED_OF_SOUND

from .physics import AIR_ABSORPTION, OCTAVES, Room, eyring_rt60

HALF = 32                # fractional-delay kernel half-width, samples (65 taps, Hann-windowed sinc)
NFRAME, HOP = 512, 256   # frames of the diffuse fields and tails
FADE = 0.010             # s: image sources fade out, the tail fades in, over the last 10 ms before ism_until


def to_room(points: np.ndarray, room: Room) -> np.ndarray:
    """Array-frame points (n, 3) -> room coordinates (n, 3)."""
    p = np.atleast_2d(np.asarray(points, float))
    return np.asarray(room.array_at, float)[None, :] + p[:, [0, 2, 1]]


def image_sources(room: Room, src: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Image sources (room coordinates) within ``reach`` metres of the array centre and their
    octave-band reflection amplitudes: ``(positions (I, 3), amplitudes (I, 6))``."""
    src = np.asarray(src, float)
    beta = {name: np.sqrt(1 - np.asarray(a)) for name, a in room.walls}
    if room.kind == "free":
        return src[None, :], np.ones((1, len(OCTAVES)))
    if room.kind == "ground":
        mirror = src * [1, 1, -1]
        return np.stack([src, mirror]), np.stack([np.ones(len(OCTAVES)), beta["floor"]])
    axes = []
    for k, (lo, hi) in enumerate((("x0", "x1"), ("y0", "y1"), ("floor", "ceiling"))):
        length = room.dim[k]
        n = np.arange(-int(reach // (2 * length)) - 2, int(reach // (2 * length)) + 3)
        q = np.array([0, 1])
        nn, qq = np.meshgrid(n, q, indexing="ij")
        nn, qq = nn.ravel(), qq.ravel()
        coord = (1 - 2 * qq) * src[k] + 2 * nn * length
        amp = beta[lo][None, :] ** np.abs(nn - qq)[:, None] * beta[hi][None, :] ** np.abs(nn)[:, None]
        axes.append((coord, amp))
    (x, ax), (y, ay), (z, az) = axes
    pos = np.stack(np.meshgrid(x, y, z, indexing="ij"), -1).reshape(-1, 3)
    amp = (ax[:, None, None, :] * ay[None, :, None, :] * az[None, None, :, :]).reshape(-1, len(OCTAVES))
    keep = np.linalg.norm(pos - np.asarray(room.array_at)[None, :], axis=1) <= reach
    return pos[keep], amp[keep]


def band_masks(n_fft: int, fs: float) -> np.ndarray:
    """Complementary octave-band masks over the rfft bins (sum to 1): [shape=(6, n_fft // 2 + 1)]."""
    f = np.fft.rfftfreq(n_fft, 1 / fs)
    lf = np.log2(np.maximum(f, 1.0))
    edges = np.log2(np.sqrt(np.array(OCTAVES[:-1]) * np.array(OCTAVES[1:])))
    up = [np.clip((lf - e) / 0.5 + 0.5, 0, 1) for e in edges]                  # 0 below, 1 above
    up = [0.5 - 0.5 * np.cos(np.pi * u) for u in up]
    masks = [1 - up[0]] + [up[i] - up[i + 1] for i in range(len(up) - 1)] + [up[-1]]
    return np.stack(masks)


def rirs(room: Room, src: np.ndarray, mics: np.ndarray, fs: float, mic_gain=None, mic_delay=None) -> np.ndarray:
    """Impulse responses from ``src`` to ``mics`` (both array frame) up to ``room.ism_until``
    (everything for ``free``/``ground`` rooms), sample ``j`` at time ``(j - HALF) / fs``.

    ``mic_gain`` (M,) and ``mic_delay`` (M,) s model the microphones' sensitivity and phase spread.

    Returns
    -------
    np.ndarray [shape=(M, L)]
    """
    c = SPEED_OF_SOUND
    mics_r = to_room(mics, room)
    src_r = to_room(src, room)[0]
    reach = (c * room.ism_until if room.kind == "shoebox" else np.inf)
    pos, amp = image_sources(room, src_r, reach + 1.0 if np.isfinite(reach) else 1e9)
    d = np.linalg.norm(pos[None, :, :] - mics_r[:, None, :], axis=2)          # (M, I)
    t = d / c
    if mic_delay is not None:
        t = t + np.asarray(mic_delay)[:, None]
    weight = 1 / d
    if room.kind == "shoebox":                                               # fade out before the tail
        t_end = room.ism_until
        ramp = np.clip((t_end - t) / FADE, 0, 1)
        weight = weight * np.sin(0.5 * np.pi * ramp) ** 2
    if mic_gain is not None:
        weight = weight * np.asarray(mic_gain)[:, None]
    air = np.exp(-np.asarray(AIR_ABSORPTION)[None, None, :] * d[:, :, None] / 2)   # (M, I, 6)
    band_amp = weight[:, :, None] * amp[None, :, :] * air
    s = t * fs + HALF
    length = int(np.ceil(s.max())) + HALF + 2
    base = np.floor(s).astype(np.int64)
    k = np.arange(-HALF + 1, HALF + 1)
    x = (base[:, :, None] + k[None, None, :]) - s[:, :, None]                  # (M, I, 2 HALF)
    kern = np.sinc(x) * (0.5 + 0.5 * np.cos(np.pi * x / (HALF + 1)))
    idx = (np.arange(len(mics))[:, None, None] * length + base[:, :, None] + k[None, None, :]).ravel()
    n_fft = 1 << int(np.ceil(np.log2(length + 4 * HALF)))
    masks = band_masks(n_fft, fs)
    spec = np.zeros((len(mics), n_fft // 2 + 1), complex)
    for b in range(len(OCTAVES)):
        h = np.bincount(idx, (kern * band_amp[:, :, b:b + 1]).ravel(), len(mics) * length)
        spec += masks[b][None, :] * np.fft.rfft(h.reshape(len(mics), length), n_fft, axis=1)
    return np.fft.irfft(spec, n_fft, axis=1)[:, :length]


def add_convolved(out: np.ndarray, signal: np.ndarray, start: int, h: np.ndarray) -> None:
    """``out[start + j - HALF] += (signal * h)[j]`` for every microphone (columns of ``out``)."""
    n_fft = 1 << int(np.ceil(np.log2(len(signal) + h.shape[1])))
    y = np.fft.irfft(np.fft.rfft(signal, n_fft)[None, :] * np.fft.rfft(h, n_fft, axis=1), n_fft, axis=1)
    y = y[:, : len(signal) + h.shape[1] - 1]
    lo = start - HALF
    a, b = max(0, lo), min(out.shape[0], lo + y.shape[1])
    if a < b:
        out[a:b] += y[:, a - lo:b - lo].T


# ------------------------------------------------------------------------------- frame processing
def _window() -> np.ndarray:
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(NFRAME) / NFRAME))


def n_frames(n: int) -> int:
    return n // HOP + 2


def frame_power(x: np.ndarray) -> np.ndarray:
    """|STFT|^2 of a signal on the frames of :func:`diffuse`: [shape=(NFRAME // 2 + 1, n_frames)]."""
    w = _window()
    t = n_frames(len(x))
    pad = np.zeros(t * HOP + NFRAME)
    pad[NFRAME // 2:NFRAME // 2 + len(x)] = x
    frames = np.lib.stride_tricks.sliding_window_view(pad, NFRAME)[::HOP][:t]
    return (np.abs(np.fft.rfft(frames * w, axis=1)) ** 2).T


def plane_waves(n_waves: int, kind: str) -> np.ndarray:
    """Unit arrival directions (array frame): ``spherical`` (Fibonacci lattice) or ``horizontal``
    (evenly spread in the x-z plane)."""
    i = np.arange(n_waves) + 0.5
    if kind == "horizontal":
        phi = 2 * np.pi * i / n_waves
        return np.stack([np.cos(phi), np.zeros(n_waves), np.sin(phi)], 1)
    theta = np.arccos(1 - 2 * i / n_waves)
    phi = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.sin(theta) * np.cos(phi), np.cos(theta), np.sin(theta) * np.sin(phi)], 1)


def diffuse(mics: np.ndarray, n: int, fs: float, parts, kind: str = "spherical", n_waves: int = 64,
            mic_gain=None, mic_delay=None, block: int = 96) -> np.ndarray:
    """A diffuse field at the microphones: the sum over ``parts`` of plane-wave fields.

    Parameters
    ----------
    mics : np.ndarray [shape=(M, 3)], array frame
    parts : list of (gain, rng)
        ``gain`` [shape=(F, 1) or (F, n_frames(n))]: the field's spectrum as a multiplier of unit
        white noise per bin and frame (its variance density); ``rng`` draws that part's waves.
    kind : ``spherical`` or ``horizontal``

    Returns
    -------
    np.ndarray [shape=(n, M)], float32
    """
    n_mics = len(mics)
    t_total = n_frames(n)
    freqs = np.fft.rfftfreq(NFRAME, 1 / fs)
    tau = -(plane_waves(n_waves, kind) @ np.asarray(mics, float).T) / SPEED_OF_SOUND     # (W, M)
    if mic_delay is not None:
        tau = tau + np.asarray(mic_delay)[None, :]
    g = np.ones(n_mics) if mic_gain is None else np.asarray(mic_gain, float)
    mix = (np.exp(-2j * np.pi * freqs[:, None, None] * tau.T[None, :, :]) * g[None, :, None]
           / math.sqrt(n_waves)).astype(np.complex64)                                     # (F, M, W)
    w = _window()
    noise = [(np.asarray(gain, np.float32), rng.standard_normal((n_waves, t_total * HOP + NFRAME),
                                                                  dtype=np.float32)) for gain, rng in parts]
    out = np.zeros((t_total * HOP + NFRAME, n_mics), np.float32)
    for t0 in range(0, t_total, block):
        t1 = min(t_total, t0 + block)
        spec = 0
        for gain, x in noise:
            frames = np.lib.stride_tricks.sliding_window_view(x[:, t0 * HOP:(t1 - 1) * HOP + NFRAME], NFRAME,
                                                              axis=1)[:, ::HOP]            # (W, Tb, N)
            u = np.fft.rfft(frames * w, axis=2)                                        # (W, Tb, F)
            gg = gain[:, t0:t1] if gain.shape[1] > 1 else gain
            spec = spec + u * gg.T[None, :, :]
        spec = np.ascontiguousarray(spec.transpose(2, 0, 1))                           # (F, W, Tb)
        y = np.empty((len(freqs), n_mics, t1 - t0), np.complex64)
        with threadpool_limits(1, user_api="blas"):      # small products: threads only contend
            for k in range(len(freqs)):
                np.matmul(mix[k], spec[k], out=y[k])
        z = np.fft.irfft(y, NFRAME, axis=0) * w[:, None, None]                         # (N, M, Tb)
        for j in range(t1 - t0):
            s = (t0 + j) * HOP
            out[s:s + NFRAME] += z[:, :, j]
    return out[NFRAME // 2:NFRAME // 2 + n]


# ------------------------------------------------------------------------------------- the tail
def rt60_per_bin(room: Room, fs: float) -> np.ndarray:
    """Eyring T60 interpolated (in log frequency) at the frame bins: [shape=(NFRAME // 2 + 1,)]."""
    f = np.maximum(np.fft.rfftfreq(NFRAME, 1 / fs), OCTAVES[0])
    return np.interp(np.log2(f), np.log2(OCTAVES), eyring_rt60(room))


@functools.lru_cache(maxsize=8)
def tail_kernel(room: Room, fs: float, length_s: float | None = None) -> np.ndarray:
    """Expected tail energy per frame lag, ``a[f, j] = sum_k E[h_k^2]`` over the samples ``k`` of lag
    frame ``j`` (centred on ``j * HOP``): [shape=(F, J)]."""
    t60 = rt60_per_bin(room, fs)
    length_s = length_s or 1.2 * float(t60.max())
    lx, ly, lz = room.dim
    k = np.arange(int(length_s * fs) + HOP)
    t = k / fs
    onset = np.sin(0.5 * np.pi * np.clip((t - (room.ism_until - FADE)) / FADE, 0, 1)) ** 2
    density = 4 * np.pi * SPEED_OF_SOUND / (lx * ly * lz) / fs * onset             # per sample
    e = density[None, :] * np.exp(-13.8155 * t[None, :] / t60[:, None])            # (F, K)
    j = (k + HOP // 2) // HOP
    starts = np.flatnonzero(np.diff(j, prepend=-1))
    return np.add.reduceat(e, starts, axis=1)


def tail_gain(power: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Tail multiplier per bin and frame from a source's frame power (:func:`frame_power`, summed
    over independent sources): ``sqrt(sum_j a_j P(t - j) / sum(w^2))``."""
    t, j = power.shape[1], kernel.shape[1]
    n = 1 << int(np.ceil(np.log2(t + j)))
    conv = np.fft.irfft(np.fft.rfft(power, n, axis=1) * np.fft.rfft(kernel, n, axis=1), n, axis=1)[:, :t]
    return np.sqrt(np.maximum(conv, 0) / (NFRAME / 2))


# ------------------------------------------------------------------------------------ measuring
def schroeder_t30(h: np.ndarray, fs: float, band: float | None = None) -> float:
    """T30 (s, extrapolated to 60 dB) of an impulse response from its Schroeder backward integral,
    in the octave band centred on ``band`` Hz (None: broadband)."""
    import scipy.signal

    h = np.asarray(h, float)
    if band is not None:               # an order-3 Butterworth octave filter (as IEC 61260 class filters)
        sos = scipy.signal.butter(3, [band / math.sqrt(2), min(band * math.sqrt(2), 0.49 * fs)], "bandpass",
                                  fs=fs, output="sos")
        h = scipy.signal.sosfilt(sos, h)
    e = np.cumsum((h ** 2)[::-1])[::-1]
    if e[0] <= 0:
        return 0.0
    edc = 10 * np.log10(np.maximum(e / e[0], 1e-30))
    i5 = int(np.argmax(edc <= -5))
    i35 = int(np.argmax(edc <= -35))
    if i35 <= i5:
        return 0.0
    t = np.arange(i5, i35) / fs
    slope = np.polyfit(t, edc[i5:i35], 1)[0]
    return float(-60 / slope) if slope < 0 else float("inf")
