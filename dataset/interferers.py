"""Competing sound sources of physics version 2: who else is making sound, where, and when.

| scenario | sources (levels and their sources: :mod:`acam.dataset.physics`, docs/DATASET.md) |
|---|---|
| 1 anechoic room | none |
| 2 office | 1-2 colleagues talking (seated, 60 dBA at 1 m, talk spurts), a colleague typing (50 dBA), a desk phone ringing in 30 % of the sequences (68 dBA), a printer running in 30 % (60 dBA) - anywhere in the room 2-8 m from the array, most of them outside the camera's view |
| 3 terrace | cars passing on a road 15 m behind the array (84.5 dBA at 1 m, EN 1793-3 spectrum, 1 per 10 s, 30-50 km/h), 0-2 passers-by walking 3-15 m away (footsteps 62 dBA LAFmax; half of them talking at 64 dBA), a bird singing 20 m away 4 m up in half of the sequences (91 dB SPL) |

Moving sources are cut into 0.25 s segments, each played from its mid-point (pyroomacoustics-style
waypoints: Doppler is ignored).  Probabilities, durations and rates are estimates (E).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import physics as ph
from .ambience import traffic_psd
from .sounds import ACTIONS, Subject, synthesise_traced


@dataclass
class Emission:
    """``signal`` (Pa, free-field pressure at 1 m) played from ``position`` (array frame) from sample
    ``start`` on."""

    start: int
    signal: np.ndarray
    position: np.ndarray


@dataclass
class Source:
    """One physical source: a kind and what it emits."""

    kind: str
    emissions: list = field(default_factory=list)

    @property
    def in_view_fraction(self) -> float:
        from acam.beamform.grid import CameraGrid

        g = CameraGrid()
        pos = [e.position for e in self.emissions]
        return float(np.mean([p[2] > 0 and g.in_view(p) for p in pos])) if pos else 0.0


def moving(kind: str, signal: np.ndarray, start: int, path, fs: float, segment: float = 0.25,
           fade: float = 0.02) -> Source:
    """A source playing ``signal`` from sample ``start`` while moving along ``path(t)`` (t in s from
    its start): segments of ``segment`` s with ``fade`` s linear cross-fades."""
    m, f = int(segment * fs), int(fade * fs)
    src = Source(kind)
    for a in range(0, len(signal), m):
        lo, hi = max(0, a - f), min(len(signal), a + m + f)
        seg = signal[lo:hi].astype(float).copy()
        if a > 0:
            seg[: min(2 * f, len(seg))] *= np.linspace(0, 1, 2 * f)[: min(2 * f, len(seg))]
        if a + m < len(signal):
            seg[-2 * f:] *= np.linspace(1, 0, 2 * f)[-len(seg[-2 * f:]):]
        src.emissions.append(Emission(start + lo, seg, np.asarray(path((a + m / 2) / fs), float)))
    return src


def _gate(n: int, fs: float, rng, on=(2.0, 6.0), off=(1.0, 4.0), ramp: float = 0.05) -> np.ndarray:
    """On/off pattern (talk spurts, typing bursts) with ``ramp`` s ramps, random phase."""
    g = np.zeros(n)
    t = -rng.uniform(0, on[1] + off[1])
    while t < n / fs:
        a = rng.uniform(*on)
        lo, hi = int(max(0, t) * fs), int(min(n / fs, t + a) * fs)
        g[lo:hi] = 1
        t += a + rng.uniform(*off)
    r = max(1, int(ramp * fs))
    return np.convolve(g, np.ones(r) / r, "same")


def _level(x, fs, figure) -> np.ndarray:
    return ph.scale_to_laeq(x, fs, figure.value)


def _place_in_office(rng, target: np.ndarray, height: float, room: ph.Room) -> np.ndarray:
    """A position (array frame) anywhere in the office, 2-8 m from the array, 1.5 m from the subject."""
    lx, ly, _ = room.dim
    ax, ay, az = room.array_at
    for _ in range(1000):
        x, y = rng.uniform(0.5, lx - 0.5), rng.uniform(0.5, ly - 0.5)
        p = np.array([x - ax, height - az, y - ay])
        if 2.0 <= np.hypot(p[0], p[2]) <= 8.0 and np.linalg.norm(p - target) >= 1.5:
            return p
    return np.array([lx / 2 - ax, height - az, ly - 0.5 - ay])


def _speech(n, fs, rng, figure) -> np.ndarray:
    who = Subject(pitch=float(rng.uniform(0.85, 1.2)), tempo=float(rng.uniform(0.85, 1.2)),
                  brightness=float(rng.uniform(-2, 2)))
    x, _ = synthesise_traced(ACTIONS.index("speaking"), n / fs, fs, who, rng)
    return _level(x, fs, figure) * _gate(n, fs, rng)


def _phone(n, fs, rng) -> np.ndarray:
    t = np.arange(n) / fs
    f1 = rng.uniform(900, 1400)
    ring = np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * 1.25 * f1 * t)
    ring *= 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 20 * t))                    # 20 Hz warble
    cadence = ((t % 3.0) < 1.0).astype(float)                                    # 1 s on, 2 s off
    episode = np.zeros(n)
    a = rng.uniform(-6, n / fs)
    episode[int(max(0, a) * fs):int(max(0, min(n / fs, a + rng.uniform(6, 12))) * fs)] = 1
    x = ring * cadence
    return _level(x, fs, ph.PHONE_LEVEL) * episode


def _printer(n, fs, rng) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fs)
    x = np.fft.irfft(spec / np.sqrt(np.maximum(f, 100.0)), n)                    # pink-ish
    x *= 1 + 0.5 * np.sin(2 * np.pi * 0.5 * np.arange(n) / fs)                   # pages
    episode = np.zeros(n)
    a = rng.uniform(-5, n / fs)
    episode[int(max(0, a) * fs):int(max(0, min(n / fs, a + rng.uniform(5, 15))) * fs)] = 1
    return _level(x, fs, ph.PRINTER_LEVEL) * episode


def office(n: int, fs: float, rng: np.random.Generator, target: np.ndarray) -> list[Source]:
    """Colleagues talking and typing, a phone, a printer (scenario 2)."""
    room = ph.ROOMS[2]
    out = []
    for _ in range(int(rng.integers(1, 3))):
        out.append(Source("talker", [Emission(0, _speech(n, fs, rng, ph.TALKER_LEVEL),
                                              _place_in_office(rng, target, 1.12, room))]))
    who = Subject(pitch=float(rng.uniform(0.85, 1.2)), tempo=float(rng.uniform(0.85, 1.2)))
    typing, _ = synthesise_traced(ACTIONS.index("typing"), n / fs, fs, who, rng)
    typing = _level(typing, fs, ph.TYPING_COLLEAGUE_LEVEL) * _gate(n, fs, rng, (3.0, 10.0), (2.0, 6.0))
    out.append(Source("typing", [Emission(0, typing, _place_in_office(rng, target, 0.76, room))]))
    if rng.random() < 0.3:
        out.append(Source("phone", [Emission(0, _phone(n, fs, rng), _place_in_office(rng, target, 0.76, room))]))
    if rng.random() < 0.3:
        out.append(Source("printer", [Emission(0, _printer(n, fs, rng), _place_in_office(rng, target, 1.0, room))]))
    return out


# ------------------------------------------------------------------------------------ terrace
def shaped_noise(n: int, fs: float, rng, psd_fn) -> np.ndarray:
    """Gaussian noise whose one-sided PSD (Pa^2/Hz) is ``psd_fn(f)``."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fs)
    return np.fft.irfft(spec * np.sqrt(psd_fn(f) * fs / 2), n)


def _car(kmh, fs, rng) -> tuple[np.ndarray, callable]:
    v = kmh / 3.6 * rng.choice([-1, 1])
    half = 80.0
    dur = 2 * half / abs(v)
    x = shaped_noise(int(dur * fs), fs, rng, traffic_psd)
    x = ph.scale_to_laeq(x, fs, ph.CAR_LEVEL.value)
    z = -ph.ROAD_DISTANCE.value
    return x, (lambda t: np.array([-np.sign(v) * half + v * t, 0.3 - ph.ARRAY_HEIGHT.value, z]))


def _walker_path(rng) -> callable:
    d = rng.uniform(3.0, 15.0)
    ang = rng.uniform(0, 2 * np.pi)
    normal = np.array([np.cos(ang), np.sin(ang)])
    along = np.array([-normal[1], normal[0]]) * rng.choice([-1, 1])
    p0 = normal * d - along * 15.0
    v = ph.WALKING_SPEED.value
    return lambda t, h: np.array([(p0 + along * v * t)[0], h - ph.ARRAY_HEIGHT.value, (p0 + along * v * t)[1]])


def _steps(n, fs, rng) -> np.ndarray:
    step = rng.standard_normal(int(0.03 * fs)) * np.exp(-np.arange(int(0.03 * fs)) / (0.006 * fs))
    window = np.zeros(int(0.125 * fs))
    window[: len(step)] = step
    step = ph.scale_to_laeq(window, fs, ph.FOOTSTEP_LEVEL.value)[: len(step)]     # LAFmax ~ LAeq over 125 ms
    x = np.zeros(n)
    for t in np.arange(rng.uniform(0, 0.5), n / fs, 0.5):
        i = int(t * fs)
        x[i:i + len(step)] += step[: max(0, min(len(step), n - i))] * rng.uniform(0.7, 1.0)
    return x


def _bird(n, fs, rng) -> np.ndarray:
    x = np.zeros(n)
    t = rng.uniform(-2, 6)
    while t < n / fs:
        song = int(rng.uniform(1.5, 2.5) * fs)
        tt = np.arange(song) / fs
        f = rng.uniform(2500, 4000) + 1500 * np.sin(2 * np.pi * rng.uniform(10, 20) * tt)
        s = np.sin(2 * np.pi * np.cumsum(f) / fs) * np.hanning(song)
        s *= 10 ** (ph.BIRD_LEVEL.value / 20) * ph.P_REF / np.sqrt(np.mean(s ** 2))
        i = int(t * fs)
        lo = max(0, i)
        if lo < n and i + song > 0:
            x[lo:min(n, i + song)] += s[lo - i:min(n, i + song) - i]
        t += song / fs + rng.uniform(6, 12)
    return x


def terrace(n: int, fs: float, rng: np.random.Generator, target: np.ndarray) -> list[Source]:
    """Cars, passers-by, a bird (scenario 3); the wind is noise (:mod:`acam.dataset.ambience`)."""
    out = []
    t = rng.uniform(-12, 0)
    while t < n / fs:
        x, path = _car(rng.uniform(*ph.CAR_SPEED_KMH), fs, rng)
        start = int(t * fs)
        lo, hi = max(0, -start), min(len(x), n - start)
        if hi > lo:
            out.append(moving("car", x[lo:hi], start + lo, lambda s, lo=lo, path=path: path(s + lo / fs), fs))
        t += rng.exponential(1 / ph.CARS_PER_SECOND.value)
    for _ in range(int(rng.integers(0, 3))):
        path = _walker_path(rng)
        start = int(rng.uniform(-10, n / fs) * fs)
        length = int(30.0 / ph.WALKING_SPEED.value * fs)
        lo, hi = max(0, -start), min(length, n - start)
        if hi <= lo:
            continue
        steps = _steps(length, fs, rng)[lo:hi]
        out.append(moving("footsteps", steps, start + lo, lambda s, lo=lo: path(s + lo / fs, 0.01), fs))
        if rng.random() < 0.5:
            talk = _speech(length, fs, rng, ph.PASSER_BY_LEVEL)[lo:hi]
            out.append(moving("passer-by", talk, start + lo, lambda s, lo=lo: path(s + lo / fs, 1.5), fs))
    if rng.random() < 0.5:
        ang = rng.uniform(0, 2 * np.pi)
        pos = np.array([20 * np.cos(ang), 4.0 - ph.ARRAY_HEIGHT.value, 20 * np.sin(ang)])
        out.append(Source("bird", [Emission(0, _bird(n, fs, rng), pos)]))
    return out


def nobody(n: int, fs: float, rng: np.random.Generator, target: np.ndarray) -> list[Source]:
    """The anechoic room: nobody else (scenario 1)."""
    return []


PLANNERS = {1: nobody, 2: office, 3: terrace}
