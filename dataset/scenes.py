"""The three scenarios of the paper, simulated with pyroomacoustics, with a moving subject.

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


def simulate_sequence(signal: np.ndarray, fs: float, scenario: int, geometry: ArrayGeometry,
                      start: np.ndarray, end: np.ndarray, rng: np.random.Generator,
                      waypoints: int = 4, max_order: int = 6, extra_mic: np.ndarray | None = None) -> np.ndarray:
    """The array's recording of ``signal`` played by a subject walking from ``start`` to ``end``.

    Returns
    -------
    np.ndarray [shape=(len(signal), n_mics (+1 with extra_mic))], float32
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

    def room_for():
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

    room, place = room_for()
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
    room.simulate()
    sig = room.mic_array.signals[:, delay:delay + n].T
    out[: sig.shape[0]] = sig
    p_sig = float(np.mean(out ** 2)) or 1.0
    noise = diffuse_noise(mics, n, fs, rng, n_waves=64)
    out += noise * math.sqrt(p_sig / 10 ** (spec.snr_db / 10) / np.mean(noise ** 2))
    return out.astype(np.float32)
