"""The 14 action sounds, synthesised so that each class has its own acoustic signature.

Every class is a small generative model: a rhythm of events (or a continuous texture) and the
sound of one event.  ``Subject`` parameters (pitch, tempo, loudness, brightness) vary them per
person; the per-sequence random generator varies every event.  Signals are returned at unit RMS
times the subject's loudness, before propagation (physics version 2 then scales them to the action's
cited level, :mod:`.physics`).  :func:`synthesise_traced` also returns what happened when (a
:class:`Trace`, for the video); :class:`UserSounds` plays recordings instead (``--sounds``).

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
import os
from dataclasses import dataclass, field

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


def _place(out, event, start, trace=None):
    i = int(start)
    if i >= len(out) or i < 0:
        return
    j = min(len(out), i + len(event))
    out[i:j] += event[: j - i]
    if trace is not None:
        trace.events.append(i)


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


@dataclass
class Trace:
    """What the synthesiser did, for the video: ``events`` (sample index of every impact, tear,
    crack...), ``spans`` ((first, last) samples of continuous bouts) and ``mouth`` (the articulation
    envelope of speech, 0-1 per sample, or None)."""

    events: list = field(default_factory=list)
    spans: list = field(default_factory=list)
    mouth: np.ndarray | None = None


def _clapping(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _times(duration, rng.uniform(2.5, 4.0) * tempo, rng, 0.1):
        _place(out, _burst(0.05, 0.005, 800 * p, 4000 * p, fs, rng), t * fs, tr)
    return out


def _snapping(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _times(duration, rng.uniform(1.0, 2.0) * tempo, rng, 0.3):
        _place(out, _burst(0.02, 0.002, 2000 * p, 5000 * p, fs, rng), t * fs, tr)
    return out


def _speaking(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    t_all = np.arange(n) / fs
    f0 = rng.uniform(100, 220) * p * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t_all))
    phase = np.cumsum(f0) / fs
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)
    syll = 4.0 * tempo
    env = np.sin(np.pi * ((t_all * syll) % 1.0)) ** 2
    gate = np.repeat(rng.random(int(duration * syll) + 2) > 0.2, int(fs / syll) + 1)[:n]
    src = pulses * env * gate
    tr.mouth = env * gate
    for fm in (rng.uniform(500, 800), rng.uniform(1100, 1800), rng.uniform(2300, 3000)):
        b, a = scipy.signal.iirpeak(min(fm * p, 0.45 * fs), 8, fs)
        out += scipy.signal.lfilter(b, a, src)
    return out


def _whistling(n, duration, fs, p, tempo, rng, tr):
    t_all = np.arange(n) / fs
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
    return out


def _kendama(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _times(duration, 1.0 / 1.6 * tempo, rng, 0.1):
        for dt in (0.0, rng.uniform(0.7, 0.9)):
            _place(out, _modes([1100 * p, 2700 * p], [0.02, 0.01], 0.1, fs, rng), (t + dt) * fs, tr)
    return out


def _clicking(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _times(duration, rng.uniform(1.0, 2.0) * tempo, rng, 0.3):
        for dt in (0.0, rng.uniform(0.08, 0.15)):
            _place(out, _burst(0.008, 0.001, 3000 * p, 6000, fs, rng), (t + dt) * fs, tr)
    return out


def _typing(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _poisson(duration, rng.uniform(6, 9) * tempo, rng):
        lo = rng.uniform(1500, 2500) * p
        _place(out, _burst(0.02, 0.003, lo, lo * 1.7, fs, rng), t * fs, tr)
    return out


def _knocking(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _times(duration, 1 / 1.2 * tempo, rng, 0.1):
        for j in range(3):
            thump = _modes([rng.uniform(250, 450) * p], [0.03], 0.15, fs, rng)
            thump += 0.3 * _burst(0, 0.004, 500, 3000, fs, rng, n=len(thump))
            _place(out, thump, (t + j * 0.18 / tempo) * fs, tr)
    return out


def _hammering(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _times(duration, 1.5 * tempo, rng, 0.08):
        ring = _modes([2200 * p, 3400 * p, 5100 * p], [0.15, 0.1, 0.06], 0.5, fs, rng)
        _place(out, ring + 2 * _burst(0, 0.003, 300, 5000, fs, rng, n=len(ring)), t * fs, tr)
    return out


def _peanut(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _times(duration, rng.uniform(0.7, 1.4) * tempo, rng, 0.3):
        for dt in np.sort(rng.uniform(0, 0.25, rng.integers(3, 9))):
            _place(out, _burst(0.006, 0.0008, 1000, 5500, fs, rng), (t + dt) * fs, tr)
    return out


def _ripping(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _times(duration, 0.6 * tempo, rng, 0.3):
        d = rng.uniform(0.6, 1.5)
        m = int(d * fs)
        tt = np.arange(m) / fs
        am = np.abs(np.sin(2 * np.pi * rng.uniform(40, 70) * tt)) ** 3 * (0.5 + 0.5 * rng.random(m))
        _place(out, _band(rng.standard_normal(m), 1000, 6000, fs) * am * np.hanning(m), t * fs)
        tr.spans.append((int(t * fs), int(t * fs) + m))
    return out


def _crumpling(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _times(duration, 0.5 * tempo, rng, 0.2):
        d = rng.uniform(1.0, 2.0)
        tr.spans.append((int(t * fs), int((t + d) * fs)))
        for dt in _poisson(d, rng.uniform(60, 120), rng):
            _place(out, _burst(0.004, 0.0007, 3000, 6000, fs, rng) * rng.uniform(0.3, 1), (t + dt) * fs)
    return out


def _shaking(n, duration, fs, p, tempo, rng, tr):
    t_all = np.arange(n) / fs
    am = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(8, 14) * tempo * t_all) ** 2
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 0.4) * t_all + rng.uniform(0, 6))
    tr.spans.append((0, n))
    return _band(rng.standard_normal(n), 500, 3000 * p, fs) * am * swell


def _stick(n, duration, fs, p, tempo, rng, tr):
    out = np.zeros(n)
    for t in _times(duration, 0.5 * tempo, rng, 0.2):
        f = rng.uniform(900, 1600) * p
        gap, amp, tt = rng.uniform(0.15, 0.25), 1.0, t
        tr.events.append(int(t * fs))                      # the first impact; bounces follow
        for _ in range(int(rng.integers(4, 7))):
            _place(out, amp * _modes([f, 2.7 * f], [0.03, 0.015], 0.12, fs, rng), tt * fs)
            tt += gap
            gap *= 0.65
            amp *= 0.6
    return out


#: One generator per action, in the order of :data:`ACTIONS`.
SYNTHS = dict(zip(ACTIONS, (_clapping, _snapping, _speaking, _whistling, _kendama, _clicking, _typing,
                            _knocking, _hammering, _peanut, _ripping, _crumpling, _shaking, _stick)))


def synthesise_traced(action: int, duration: float, fs: float, subject: Subject,
                      rng: np.random.Generator) -> tuple[np.ndarray, Trace]:
    """One sequence of action ``action`` (index into :data:`ACTIONS`) at unit RMS x loudness, and its
    :class:`Trace`.

    Returns
    -------
    (np.ndarray [shape=(round(duration * fs),)], Trace)
    """
    n = int(round(duration * fs))
    trace = Trace()
    out = SYNTHS[ACTIONS[action]](n, duration, fs, subject.pitch, subject.tempo, rng, trace)
    if subject.brightness:
        spec = np.fft.rfft(out)
        f = np.fft.rfftfreq(n, 1 / fs)
        gain = 10 ** (subject.brightness * np.log2(np.maximum(f, 1000) / 1000) / 20)
        out = np.fft.irfft(spec * gain, n)
    rms = np.sqrt(np.mean(out ** 2))
    if rms == 0:
        return out, trace
    return out / rms * subject.loudness, trace


def synthesise(action: int, duration: float, fs: float, subject: Subject, rng: np.random.Generator) -> np.ndarray:
    """One sequence of action ``action`` (index into :data:`ACTIONS`): unit RMS x loudness.

    Returns
    -------
    np.ndarray [shape=(round(duration * fs),)]
    """
    return synthesise_traced(action, duration, fs, subject, rng)[0]


# ------------------------------------------------------------------------------ user recordings
MAX_WAV_BYTES = 256 * 2 ** 20


def _folder_key(name: str) -> str:
    return name.lower().replace("_", " ").replace("-", " ").strip()


class UserSounds:
    """Mono recordings laid out as ``folder/<action>/*.wav`` (the action's name, spaces or ``_`` or
    ``-`` between words, any case), rendered through the same scenes instead of the synthesised
    signatures (see :func:`acam.dataset.build.build`).

    Raises :class:`AcamError` naming every action without a recording.
    """

    def __init__(self, folder):
        from acam.core.errors import AcamError

        self.folder = os.fspath(folder)
        if not os.path.isdir(self.folder):
            raise AcamError(f"sounds folder {self.folder!r} does not exist")
        subdirs = {_folder_key(d): os.path.join(self.folder, d) for d in sorted(os.listdir(self.folder))
                   if os.path.isdir(os.path.join(self.folder, d))}
        self.files = {}
        for action in ACTIONS:
            d = subdirs.get(action)
            wavs = sorted(os.path.join(d, f) for f in os.listdir(d) if f.lower().endswith(".wav")) if d else []
            self.files[action] = [w for w in wavs if os.path.isfile(w)]
        missing = [a for a in ACTIONS if not self.files[a]]
        if missing:
            raise AcamError(f"sounds folder {self.folder!r} has no .wav recordings for "
                            f"{', '.join(repr(a) for a in missing)} (expected {self.folder}/<action>/*.wav)")

    def digest(self) -> str:
        """Names, sizes and modification times of every recording (a build resumes only on the same set)."""
        from acam.core.digest import digest

        return digest([(os.path.relpath(f, self.folder), os.path.getsize(f), os.path.getmtime(f))
                       for a in ACTIONS for f in self.files[a]])

    def signal(self, action: int, n: int, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, Trace]:
        """``n`` samples at ``fs`` of one recording of ``action`` (chosen by ``rng``), repeated
        cyclically from a random start (as the authors did for short clips), and its onsets."""
        from acam.beamform.simulate import load_wav
        from acam.core.errors import AcamError

        files = self.files[ACTIONS[action]]
        path = files[int(rng.integers(len(files)))]
        if os.path.getsize(path) > MAX_WAV_BYTES:
            raise AcamError(f"{path}: {os.path.getsize(path)} bytes is more than {MAX_WAV_BYTES} for one recording")
        x = load_wav(path, fs)
        if x.size < 16 or not np.all(np.isfinite(x)) or not np.any(x):
            raise AcamError(f"{path}: the recording is empty, silent or not finite")
        start = int(rng.integers(len(x)))
        reps = int(np.ceil((start + n) / len(x)))
        out = np.tile(x - x.mean(), reps)[start:start + n]
        trace = Trace(events=onsets(out, fs))
        if ACTIONS[action] == "speaking":
            trace.mouth = articulation(out, fs)
        return out, trace


def onsets(x: np.ndarray, fs: float, min_gap: float = 0.08) -> list:
    """Sample indices of sound onsets: 10 ms frame energy rising 10 dB above the preceding 50 ms."""
    m = max(1, int(0.01 * fs))
    e = 10 * np.log10(np.add.reduceat(x ** 2, np.arange(0, len(x), m)) / m + 1e-20)
    ref = np.array([e[max(0, i - 5):i].mean() if i else e[0] for i in range(len(e))])
    top = e.max()
    hits, last = [], -np.inf
    for i in np.flatnonzero((e - ref > 10) & (e > top - 40)):
        if (i - last) * m / fs >= min_gap:
            hits.append(int(i * m))
            last = i
    return hits


def articulation(x: np.ndarray, fs: float) -> np.ndarray:
    """A 0-1 envelope of speech articulation per sample: the amplitude envelope smoothed over 50 ms."""
    m = max(1, int(0.05 * fs))
    env = np.sqrt(np.convolve(x ** 2, np.ones(m) / m, "same"))
    return env / (env.max() or 1.0)
