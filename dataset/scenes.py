"""The three scenarios of the paper with a moving subject.

Physics version 2 (the second half of this module): :func:`plan_sequence` lays out what plays where
(the subject at the height of the action, the competing sources of :mod:`.interferers`), and
:func:`render` renders it as three stems - target, interferers, noise - with :mod:`.rooms` (image
sources and a diffuse reverberant tail), :mod:`.ambience` and the :class:`Sensor`.  Version 1 (below,
:func:`simulate_sequence`) used pyroomacoustics:

| scenario | as the paper describes it | simulated as |
|---|---|---|
| 1 | anechoic room | free field (``pyroomacoustics.AnechoicRoom``), sensor self-noise at 35 dB SNR |
| 2 | indoor open-space office, strong echoes | 12 x 9 x 3.2 m shoebox, RT60 0.7 s (image order capped by the preset), diffuse office noise at 20 dB SNR |
| 3 | outdoor terrace, little reverberation, strong ambient noise | a reflecting ground (absorption 0.15) and nothing else (other surfaces fully absorbing), diffuse ambient noise at 5 dB SNR, two distant interfering sources (traffic rumble, bird chirps) 8-15 m away |

The subject stands 2-4 m from the array, inside the camera's view, and walks slowly along a
straight path (at most 0.25 m/s).  pyroomacoustics has no moving sources, so the path is sampled at
``waypoints`` positions: the sequence is cut into as many segments, each segment is played from its
waypoint (50 ms cross-fades between segments), and the reverberant responses add up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from acam.beamform.geometry import ArrayGeometry
from acam.beamform.grid import CameraGrid
from acam.beamform.simulate import diffuse_noise, to_room

SCENARIOS = {1: "anechoic room", 2: "indoor open-space office", 3: "outdoor terrace"}


@dataclass(frozen=True)
class ScenarioSpec:
    room: str                     # "free", "shoebox" or "ground"
    snr_db: float                 # diffuse noise against the source at the array
    room_dim: tuple = (12.0, 9.0, 3.2)
    rt60: float = 0.7
    interferers: int = 0


SPECS = {1: ScenarioSpec("free", 35.0), 2: ScenarioSpec("shoebox", 20.0),
         3: ScenarioSpec("ground", 5.0, room_dim=(40.0, 40.0, 20.0), interferers=2)}
ARRAY_IN_ROOM = {2: (6.0, 1.5, 1.5), 3: (20.0, 10.0, 1.5)}


def subject_path(rng: np.random.Generator, duration: float, grid: CameraGrid,
                 speed: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of a straight walk inside the view, 2-4 m away (array frame, metres)."""
    tx = math.tan(math.radians(grid.hfov) / 2) * 0.75
    z0 = rng.uniform(2.0, 4.0)
    start = np.array([rng.uniform(-tx, tx) * z0, rng.uniform(-0.45, 0.25), z0])
    for _ in range(100):
        step = rng.normal(0, 1, 3) * [1, 0.2, 0.6]
        step *= rng.uniform(0, speed * duration) / max(np.linalg.norm(step), 1e-9)
        end = start + step
        if 2.0 <= end[2] <= 4.0 and abs(end[0]) <= tx * end[2] and -0.5 <= end[1] <= 0.3:
            return start, end
    return start, start.copy()


def waypoint_edges(n: int, fs: float, waypoints: int) -> np.ndarray:
    """Sample indices where the segments of the walk start (and the last one ends)."""
    waypoints = max(1, min(waypoints, int(n / fs / 0.25)))
    return np.linspace(0, n, waypoints + 1).astype(int)


def waypoint_positions(start: np.ndarray, end: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Position of each segment of the walk: (n_segments, 3)."""
    n = edges[-1]
    mid = (edges[:-1] + edges[1:]) / 2 / n
    return start[None, :] + (end - start)[None, :] * mid[:, None]


def _interferer(kind: int, n: int, fs: float, rng) -> np.ndarray:
    t = np.arange(n) / fs
    if kind == 0:   # traffic rumble: low-passed noise with slow swells
        import scipy.signal

        sos = scipy.signal.butter(4, 400, fs=fs, output="sos")
        x = scipy.signal.sosfilt(sos, rng.standard_normal(n)) * (1 + 0.5 * np.sin(2 * np.pi * 0.1 * t))
    else:           # birds: short chirps 3-5 kHz
        x = np.zeros(n)
        for t0 in np.sort(rng.uniform(0, n / fs, int(n / fs * 2))):
            m = int(0.08 * fs)
            tt = np.arange(m) / fs
            f = rng.uniform(3000, 4500) + 8000 * tt
            seg = np.sin(2 * np.pi * np.cumsum(f) / fs) * np.hanning(m)
            i = int(t0 * fs)
            x[i:i + m] += seg[: max(0, min(m, n - i))]
    return x / (np.sqrt(np.mean(x ** 2)) or 1.0)


def v1_room(scenario: int, fs: float, max_order: int):
    """Version 1's pyroomacoustics room of a scenario and the map from array frame to its coordinates."""
    import pyroomacoustics as pra

    spec = SPECS[scenario]
    if spec.room == "free":
        return pra.AnechoicRoom(3, fs=int(fs)), (lambda p: np.atleast_2d(p))
    origin = np.array(ARRAY_IN_ROOM[scenario])
    dim = np.array(spec.room_dim)
    if spec.room == "shoebox":
        absorption, _ = pra.inverse_sabine(spec.rt60, dim)
        mat = pra.Material(absorption)
    else:
        walls = ("east", "west", "north", "south", "ceiling")
        mat = {w: pra.Material(0.99) for w in walls} | {"floor": pra.Material(0.15)}
    # outdoors only the ground reflects: first order is all there is
    order = 1 if spec.room == "ground" else max_order
    room = pra.ShoeBox(dim, fs=int(fs), materials=mat, max_order=order)
    return room, (lambda p: to_room(np.atleast_2d(p), origin))


def v1_impulse_response(scenario: int, src: np.ndarray, mic: np.ndarray, fs: float, max_order: int) -> np.ndarray:
    """Version 1's room impulse response from ``src`` to ``mic`` (array frame), aligned to emission."""
    import pyroomacoustics as pra

    room, place = v1_room(scenario, fs, max_order)
    room.add_source(place(src)[0])
    room.add_microphone_array(pra.MicrophoneArray(place(mic).T, fs))
    room.compute_rir()
    delay = (pra.constants.get("frac_delay_length") - 1) // 2
    return np.asarray(room.rir[0][0][delay:], float)


def simulate_sequence(signal: np.ndarray, fs: float, scenario: int, geometry: ArrayGeometry,
                      start: np.ndarray, end: np.ndarray, rng: np.random.Generator,
                      waypoints: int = 4, max_order: int = 6, extra_mic: np.ndarray | None = None,
                      stems: bool = False):
    """The array's recording of ``signal`` played by a subject walking from ``start`` to ``end``.

    Returns
    -------
    np.ndarray [shape=(len(signal), n_mics (+1 with extra_mic))], float32; with ``stems`` a dict of
    the ``target``, ``interferers`` and ``noise`` parts (same random draws; their sum is the recording)
    """
    import pyroomacoustics as pra

    spec = SPECS[scenario]
    n = len(signal)
    mics = geometry.positions if extra_mic is None else np.vstack([geometry.positions, extra_mic])
    fade = int(0.05 * fs)
    edges = waypoint_edges(n, fs, waypoints)
    waypoints = len(edges) - 1
    where = waypoint_positions(start, end, edges)
    out = np.zeros((n, len(mics)))
    delay = (pra.constants.get("frac_delay_length") - 1) // 2

    room, place = v1_room(scenario, fs, max_order)
    for i in range(waypoints):
        lo, hi = max(0, edges[i] - fade), min(n, edges[i + 1] + fade)
        seg = np.zeros(n)
        seg[lo:hi] = signal[lo:hi]
        ramp = np.linspace(0, 1, fade)
        if i > 0:
            seg[lo:lo + fade] *= ramp[: len(seg[lo:lo + fade])]
        if i < waypoints - 1:
            seg[hi - fade:hi] *= ramp[::-1][: len(seg[hi - fade:hi])]
        room.add_source(place(where[i])[0], signal=seg[lo:hi], delay=lo / fs)
    for k in range(spec.interferers):
        az = rng.uniform(-np.pi, np.pi)
        dist = rng.uniform(8.0, 15.0)
        pos = np.array([dist * np.sin(az), rng.uniform(-1.0, 3.0), abs(dist * np.cos(az))])
        room.add_source(place(pos)[0], signal=0.5 * _interferer(k, n, fs, rng))
    room.add_microphone_array(pra.MicrophoneArray(place(mics).T, fs))
    if stems:
        return _v1_stems(room, waypoints, n, delay, mics, fs, rng, spec)
    room.simulate()
    sig = room.mic_array.signals[:, delay:delay + n].T
    out[: sig.shape[0]] = sig
    p_sig = float(np.mean(out ** 2)) or 1.0
    noise = diffuse_noise(mics, n, fs, rng, n_waves=64)
    out += noise * math.sqrt(p_sig / 10 ** (spec.snr_db / 10) / np.mean(noise ** 2))
    return out.astype(np.float32)


def _v1_stems(room, n_target, n, delay, mics, fs, rng, spec) -> dict:
    """Version 1's recording in parts: the room run once per group of sources (its responses are
    computed once), the noise scaled against the sum as in :func:`simulate_sequence`."""
    room.compute_rir()
    saved = [src.signal for src in room.sources]
    out = {}
    for name, keep in (("target", range(n_target)), ("interferers", range(n_target, len(saved)))):
        for i, src in enumerate(room.sources):
            src.signal = saved[i] if i in keep else np.zeros_like(saved[i])
        room.simulate()
        sig = room.mic_array.signals[:, delay:delay + n].T
        out[name] = np.zeros((n, len(mics)))
        out[name][: sig.shape[0]] = sig
    p_sig = float(np.mean((out["target"] + out["interferers"]) ** 2)) or 1.0
    noise = diffuse_noise(mics, n, fs, rng, n_waves=64)
    out["noise"] = noise * math.sqrt(p_sig / 10 ** (spec.snr_db / 10) / np.mean(noise ** 2))
    return {k: v.astype(np.float32) for k, v in out.items()}


# =============================================================================== physics version 2
# The subject's sound from the height of the action (mouth, hands, table, floor), competing sources of
# real kinds (:mod:`.interferers`), ambience and wind (:mod:`.ambience`), image sources and a diffuse
# tail (:mod:`.rooms`), and the sensor's gain/phase spread and dead channels.  Everything is rendered as
# three stems - target, interferers, noise - whose sum is the recording.

STEMS = ("target", "interferers", "noise")
STREAMS = {"path": 1, "sound": 2, "interferers": 3, "ambient": 4, "tail_target": 5, "tail_interferers": 6,
           "incoherent": 7, "video": 8}


def stream(key: tuple, name: str) -> np.random.Generator:
    """The random generator of one part of a sequence (parts draw independently, so rendering some
    stems only draws exactly what the full rendering draws for them)."""
    return np.random.default_rng([*key, 1000 + STREAMS[name]])


@dataclass(frozen=True, eq=False)
class Sensor:
    """The microphones: sensitivity (linear gain), phase spread (a delay, s) and dead channels."""

    gain: np.ndarray
    delay: np.ndarray
    dead: tuple

    @classmethod
    def draw(cls, seed: int, n_mics: int) -> "Sensor":
        """One device per dataset seed: gain N(0, 0.20 dB) clipped at +-1 dB, phase N(0, 0.42 deg)
        at 1 kHz as a constant delay, the authors' dead channels."""
        from . import physics as ph

        rng = np.random.default_rng([seed, 4242])
        gain_db = np.clip(rng.normal(0, ph.GAIN_SD_DB.value, n_mics), -ph.GAIN_LIMIT_DB.value, ph.GAIN_LIMIT_DB.value)
        delay = rng.normal(0, ph.PHASE_SD_DEG_1K.value / 360 / 1000.0, n_mics)
        return cls(10 ** (gain_db / 20), delay, tuple(m for m in ph.DEAD_MICS if m < n_mics))

    def alive(self) -> np.ndarray:
        mask = np.ones(len(self.gain), bool)
        mask[list(self.dead)] = False
        return mask


def walk(rng: np.random.Generator, duration: float, grid: CameraGrid, y: float,
         speed: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of a straight walk at height ``y`` (array frame) inside the view, 2-4 m away."""
    tx = math.tan(math.radians(grid.hfov) / 2) * 0.75
    z0 = rng.uniform(2.0, 4.0)
    start = np.array([rng.uniform(-tx, tx) * z0, y, z0])
    for _ in range(100):
        step = rng.normal(0, 1, 3) * [1, 0, 0.6]
        step *= rng.uniform(0, speed * duration) / max(np.linalg.norm(step), 1e-9)
        end = start + step
        if 2.0 <= end[2] <= 4.0 and abs(end[0]) <= tx * end[2]:
            return start, end
    return start, start.copy()


@dataclass
class Plan:
    """Everything a v2 sequence plays: the subject (``target``) and the competing sources."""

    scenario: int
    n: int
    fs: float
    key: tuple
    target: object              # interferers.Source
    interferers: list
    target_signal: np.ndarray


def plan_sequence(signal: np.ndarray, fs: float, scenario: int, start: np.ndarray, end: np.ndarray,
                  waypoints: int, key: tuple) -> Plan:
    """The subject's sound cut into waypoint segments (50 ms cross-fades), and the scenario's others."""
    from .interferers import PLANNERS, Emission, Source

    n = len(signal)
    edges = waypoint_edges(n, fs, waypoints)
    where = waypoint_positions(start, end, edges)
    fade = int(0.05 * fs)
    target = Source("target")
    for i in range(len(edges) - 1):
        lo, hi = max(0, edges[i] - fade), min(n, edges[i + 1] + fade)
        seg = signal[lo:hi].astype(float).copy()
        ramp = np.linspace(0, 1, 2 * fade)
        if i > 0:
            seg[: 2 * fade] *= ramp[: len(seg[: 2 * fade])]
        if i < len(edges) - 2:
            seg[-2 * fade:] *= ramp[::-1][-len(seg[-2 * fade:]):]
        target.emissions.append(Emission(lo, seg, where[i]))
    others = PLANNERS[scenario](n, fs, stream(key, "interferers"), where.mean(0))
    return Plan(scenario, n, fs, key, target, others, np.asarray(signal, float))


def _placed(source, n: int) -> np.ndarray:
    """A source's emissions summed into one signal of ``n`` samples (for its reverberant tail)."""
    x = np.zeros(n)
    for e in source.emissions:
        a, b = max(0, e.start), min(n, e.start + len(e.signal))
        if a < b:
            x[a:b] += e.signal[a - e.start:b - e.start]
    return x


def _direct(sources, plan: Plan, mics: np.ndarray, sensor: Sensor) -> np.ndarray:
    """Image sources (direct sound and early reflections) of every emission of ``sources``."""
    from . import physics as ph
    from .rooms import add_convolved, rirs

    room = ph.ROOMS[plan.scenario]
    out = np.zeros((plan.n, len(mics)))
    for src in sources:
        for e in src.emissions:
            h = rirs(room, e.position, mics, plan.fs, sensor.gain, sensor.delay)
            add_convolved(out, e.signal, e.start, h)
    return out


def _diffuse_parts(plan: Plan, stem: str) -> list:
    """(gain, rng) of the diffuse fields in ``stem``: reverberant tails and ambience."""
    from . import physics as ph
    from .ambience import ambient_gain
    from .rooms import NFRAME, frame_power, tail_gain, tail_kernel

    room = ph.ROOMS[plan.scenario]
    if stem == "noise":
        g = ambient_gain(plan.scenario, plan.fs, np.fft.rfftfreq(NFRAME, 1 / plan.fs))
        return [] if g is None else [(g, stream(plan.key, "ambient"))]
    if room.kind != "shoebox":
        return []
    sources = [plan.target] if stem == "target" else plan.interferers
    if not sources:
        return []
    power = sum(frame_power(plan.target_signal if s is plan.target else _placed(s, plan.n)) for s in sources)
    return [(tail_gain(power, tail_kernel(room, plan.fs)), stream(plan.key, f"tail_{stem}"))]


def render(plan: Plan, mics: np.ndarray, sensor: Sensor, separate: bool = False) -> dict:
    """The recording of a plan at microphones ``mics`` (array frame).

    Returns
    -------
    dict: ``{"all": (n, M) float32}``, or with ``separate`` one entry per stem of :data:`STEMS`
    (their sum is the recording, to rounding).
    """
    from .ambience import AMBIENCE, incoherent_noise
    from .rooms import diffuse

    amb = AMBIENCE[plan.scenario]
    kind = amb[0] if amb else "spherical"
    out = {}
    parts = {}
    for stem in STEMS:
        if stem == "noise":
            x = incoherent_noise(plan.n, len(mics), plan.fs, plan.scenario, stream(plan.key, "incoherent"),
                                 sensor.gain).astype(np.float64)
        else:
            x = _direct([plan.target] if stem == "target" else plan.interferers, plan, mics, sensor)
        parts[stem] = _diffuse_parts(plan, stem)
        if separate and parts[stem]:
            x += diffuse(mics, plan.n, plan.fs, parts[stem], kind, mic_gain=sensor.gain, mic_delay=sensor.delay)
        out[stem] = x
    if not separate:
        total = out["target"] + out["interferers"] + out["noise"]
        every = [p for stem in STEMS for p in parts[stem]]
        if every:
            total += diffuse(mics, plan.n, plan.fs, every, kind, mic_gain=sensor.gain, mic_delay=sensor.delay)
        out = {"all": total}
    for k in out:
        out[k] = out[k].astype(np.float32)
        out[k][:, list(sensor.dead)] = 0
    return out
