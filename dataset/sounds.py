"""The 14 action sounds, synthesised so that each class has its own acoustic signature.

Every class is a small generative model: a rhythm of events (or a continuous texture) and the
sound of one event.  ``Subject`` parameters (pitch, tempo, loudness, brightness) vary them per
person; the per-sequence random generator varies every event.  Signals are returned at unit RMS
times the subject's loudness, before propagation.

| class | how it is made |
|---|---|
| clapping | bursts of noise (5 ms decay) band-passed 0.8-4 kHz, a steady 2.5-4 claps/s with 10% jitter |
| snapping fingers | sharp clicks (2 ms) band-passed 2-5 kHz, 1-2 snaps/s, irregular |
| speaking | glottal pulse train, f0 100-220 Hz with intonation, through 3 moving formants, 4 syllables/s |
| whistling | a pure tone 1-3 kHz gliding between notes (0.3-0.6 s each) with 5 Hz vibrato and breath noise |
| playing kendama | wooden "clacks" (damped 1.1 and 2.7 kHz modes), pairs of hits about 0.8 s apart |
| clicking | very short clicks (1 ms) of 3-6 kHz, 2-4 clicks/s in pairs (double clicks) |
| typing | key clicks (3 ms, 1.5-4 kHz, random per key) at 6-9 keys/s, Poisson |
| knocking | low thumps (damped 250-450 Hz), groups of 3 knocks every 1.2 s |
| hammering | strong impacts with a long metallic ring (damped 2.2/3.4/5.1 kHz modes), 1.5 hits/s |
| peanut breaking | clusters of 3-8 tiny broadband cracks every 0.7-1.5 s |
| paper ripping | noise 1-6 kHz, rough amplitude modulation (40-70 Hz) in 0.6-1.5 s tears |
| plastic crumpling | dense crackle: Poisson clicks at 60-120/s, 3-6 kHz, in 1-2 s bouts |
| paper shaking | flutter: noise 0.5-3 kHz modulated at 8-14 Hz, continuous with slow swells |
| stick dropping | an impact (wooden mode 0.9-1.6 kHz) followed by 3-5 bounces at shrinking intervals, every 2 s |
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.signal

ACTIONS = ("clapping", "snapping fingers", "speaking", "whistling", "playing kendama", "clicking",
           "typing", "knocking", "hammering", "peanut breaking", "paper ripping",
           "plastic crumpling", "paper shaking", "stick dropping")


@dataclass(frozen=True)
class Subject:
    """How one person makes the sounds."""

    pitch: float = 1.0        # scales tonal and resonant frequencies
    tempo: float = 1.0        # scales event rates
    loudness: float = 1.0     # RMS at 1 m
    brightness: float = 0.0   # spectral tilt, dB per octave above 1 kHz

    @classmethod
    def draw(cls, index: int, seed: int = 0) -> "Subject":
        rng = np.random.default_rng([seed, 7919, index])
        return cls(pitch=float(rng.uniform(0.85, 1.2)), tempo=float(rng.uniform(0.85, 1.2)),
                   loudness=float(rng.uniform(0.7, 1.4)), brightness=float(rng.uniform(-2.0, 2.0)))


@functools.lru_cache(maxsize=256)
def _sos(lo, hi, fs, order):
    return scipy.signal.butter(order, [lo, min(hi, 0.45 * fs)], "bandpass", fs=fs, output="sos")


def _band(x, lo, hi, fs, order=4):
    return scipy.signal.sosfilt(_sos(float(lo), float(hi), float(fs), order), x)


def _decay(n, tau, fs):
    return np.exp(-np.arange(n) / (tau * fs))


def _modes(freqs, taus, dur, fs, rng):
    n = int(dur * fs)
    t = np.arange(n) / fs
    out = np.zeros(n)
    for f, tau in zip(freqs, taus):
        if f < 0.45 * fs:
            out += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t / tau)
    return out


def _place(out, event, start):
    i = int(start)
    if i >= len(out) or i < 0:
        return
    j = min(len(out), i + len(event))
    out[i:j] += event[: j - i]


def _times(duration, rate, rng, jitter=0.1, start=None):
    """Event times at ``rate`` per second with relative jitter."""
    t = rng.uniform(0, 1 / rate) if start is None else start
    times = []
    while t < duration:
        times.append(t)
        t += max(0.02, rng.normal(1 / rate, jitter / rate))
    return np.array(times)


def _poisson(duration, rate, rng):
    n = rng.poisson(rate * duration)
    return np.sort(rng.uniform(0, duration, n))


def _burst(dur, tau, lo, hi, fs, rng, n=None):
    n = int(dur * fs) if n is None else n
    return _band(rng.standard_normal(n) * _decay(n, tau, fs), lo, hi, fs, 2)


def synthesise(action: int, duration: float, fs: float, subject: Subject, rng: np.random.Generator) -> np.ndarray:
    """One sequence of action ``action`` (index into :data:`ACTIONS`): unit RMS x loudness.

    Returns
    -------
    np.ndarray [shape=(round(duration * fs),)]
    """
    n = int(round(duration * fs))
    out = np.zeros(n)
    p, tempo = subject.pitch, subject.tempo
    name = ACTIONS[action]
    t_all = np.arange(n) / fs
    if name == "clapping":
        for t in _times(duration, rng.uniform(2.5, 4.0) * tempo, rng, 0.1):
            _place(out, _burst(0.05, 0.005, 800 * p, 4000 * p, fs, rng), t * fs)
    elif name == "snapping fingers":
        for t in _times(duration, rng.uniform(1.0, 2.0) * tempo, rng, 0.3):
            _place(out, _burst(0.02, 0.002, 2000 * p, 5000 * p, fs, rng), t * fs)
    elif name == "speaking":
        f0 = rng.uniform(100, 220) * p * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t_all))
        phase = np.cumsum(f0) / fs
        pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)
        syll = 4.0 * tempo
        env = np.sin(np.pi * ((t_all * syll) % 1.0)) ** 2
        gate = np.repeat(rng.random(int(duration * syll) + 2) > 0.2, int(fs / syll) + 1)[:n]
        src = pulses * env * gate
        for fm in (rng.uniform(500, 800), rng.uniform(1100, 1800), rng.uniform(2300, 3000)):
            b, a = scipy.signal.iirpeak(min(fm * p, 0.45 * fs), 8, fs)
            out += scipy.signal.lfilter(b, a, src)
    elif name == "whistling":
        notes = []
        t = 0.0
        while t < duration:
            d = rng.uniform(0.3, 0.6) / tempo
            notes.append((t, d, rng.uniform(1000, 3000) * p))
            t += d
        f = np.zeros(n)
        for t0, d, fr in notes:
            f[int(t0 * fs):int((t0 + d) * fs)] = fr
        f = np.convolve(f, np.ones(int(0.03 * fs)) / int(0.03 * fs), "same")
        f *= 1 + 0.01 * np.sin(2 * np.pi * 5 * t_all)
        out = np.sin(2 * np.pi * np.cumsum(f) / fs) + 0.05 * _band(rng.standard_normal(n), 1000, 5000, fs)
        out *= (rng.random(int(duration * 2) + 2) > 0.15).repeat(int(fs / 2) + 1)[:n]
    elif name == "playing kendama":
        for t in _times(duration, 1.0 / 1.6 * tempo, rng, 0.1):
            for dt in (0.0, rng.uniform(0.7, 0.9)):
                _place(out, _modes([1100 * p, 2700 * p], [0.02, 0.01], 0.1, fs, rng), (t + dt) * fs)
    elif name == "clicking":
        for t in _times(duration, rng.uniform(1.0, 2.0) * tempo, rng, 0.3):
            for dt in (0.0, rng.uniform(0.08, 0.15)):
                _place(out, _burst(0.008, 0.001, 3000 * p, 6000, fs, rng), (t + dt) * fs)
    elif name == "typing":
        for t in _poisson(duration, rng.uniform(6, 9) * tempo, rng):
            lo = rng.uniform(1500, 2500) * p
            _place(out, _burst(0.02, 0.003, lo, lo * 1.7, fs, rng), t * fs)
    elif name == "knocking":
        for t in _times(duration, 1 / 1.2 * tempo, rng, 0.1):
            for j in range(3):
                thump = _modes([rng.uniform(250, 450) * p], [0.03], 0.15, fs, rng)
                thump += 0.3 * _burst(0, 0.004, 500, 3000, fs, rng, n=len(thump))
                _place(out, thump, (t + j * 0.18 / tempo) * fs)
    elif name == "hammering":
        for t in _times(duration, 1.5 * tempo, rng, 0.08):
            ring = _modes([2200 * p, 3400 * p, 5100 * p], [0.15, 0.1, 0.06], 0.5, fs, rng)
            _place(out, ring + 2 * _burst(0, 0.003, 300, 5000, fs, rng, n=len(ring)), t * fs)
    elif name == "peanut breaking":
        for t in _times(duration, rng.uniform(0.7, 1.4) * tempo, rng, 0.3):
            for dt in np.sort(rng.uniform(0, 0.25, rng.integers(3, 9))):
                _place(out, _burst(0.006, 0.0008, 1000, 5500, fs, rng), (t + dt) * fs)
    elif name == "paper ripping":
        for t in _times(duration, 0.6 * tempo, rng, 0.3):
            d = rng.uniform(0.6, 1.5)
            m = int(d * fs)
            tt = np.arange(m) / fs
            am = np.abs(np.sin(2 * np.pi * rng.uniform(40, 70) * tt)) ** 3 * (0.5 + 0.5 * rng.random(m))
            _place(out, _band(rng.standard_normal(m), 1000, 6000, fs) * am * np.hanning(m), t * fs)
    elif name == "plastic crumpling":
        for t in _times(duration, 0.5 * tempo, rng, 0.2):
            d = rng.uniform(1.0, 2.0)
            for dt in _poisson(d, rng.uniform(60, 120), rng):
                _place(out, _burst(0.004, 0.0007, 3000, 6000, fs, rng) * rng.uniform(0.3, 1), (t + dt) * fs)
    elif name == "paper shaking":
        am = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(8, 14) * tempo * t_all) ** 2
        swell = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 0.4) * t_all + rng.uniform(0, 6))
        out = _band(rng.standard_normal(n), 500, 3000 * p, fs) * am * swell
    elif name == "stick dropping":
        for t in _times(duration, 0.5 * tempo, rng, 0.2):
            f = rng.uniform(900, 1600) * p
            gap, amp, tt = rng.uniform(0.15, 0.25), 1.0, t
            for _ in range(int(rng.integers(4, 7))):
                _place(out, amp * _modes([f, 2.7 * f], [0.03, 0.015], 0.12, fs, rng), tt * fs)
                tt += gap
                gap *= 0.65
                amp *= 0.6
    else:  # pragma: no cover - the tuple above is exhaustive
        raise ValueError(name)
    if subject.brightness:
        spec = np.fft.rfft(out)
        f = np.fft.rfftfreq(n, 1 / fs)
        gain = 10 ** (subject.brightness * np.log2(np.maximum(f, 1000) / 1000) / 20)
        out = np.fft.irfft(spec * gain, n)
    rms = np.sqrt(np.mean(out ** 2))
    if rms == 0:
        return out
    return out / rms * subject.loudness
