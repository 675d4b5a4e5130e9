"""Build the simulated dataset: sounds -> pyroomacoustics scenes -> our beamformer -> MFCC cubes,
with rendered video, one HDF5 file per sequence.

Presets (14 actions x 3 scenarios x subjects x repetitions):

| preset | subjects | sequences | seconds each | video | image-source order | what for |
|---|---|---|---|---|---|---|
| tiny | 1 | 42 | 2 | 48 x 64 | 2 | tests, CI |
| small | 3 | 126 | 10 | 96 x 128 | 6 | laptop experiments |
| paper | 9 | 378 | 30 | 240 x 320 | 8 | the paper's size |

Every sequence is made from its own seed (``[seed, action, scenario, subject, repetition]``), so a
build is deterministic and can stop and resume: finished sequence files are kept and skipped.
Files are written whole or not at all.

``physics`` picks the simulation: 2 (default) is :mod:`.physics` (cited levels, sensor noise, ambience,
competing sources, the stated reverberation, ...); 1 is the first simulation (equal loudness, ideal
microphones; image order from the preset), kept so that old datasets can be rebuilt and compared.  The
version is recorded in the manifest and in every sequence file; the image-source order column applies to
version 1 only.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from acam import __version__
from acam.beamform import Beamformer, CameraGrid, SteeringSpec, backend, default_array
from acam.beamform.io import atomic_output
from acam.core.checks import number
from acam.core.safeio import h5_output, reserve
from acam.beamform.sensor import FRAME_RATE, SAMPLE_FREQ
from acam.beamform.steering import distances, steering_weights
from acam.core.errors import AcamError
from acam.core.tasks import Task, fans_out, local_threads, local_workers, run_tasks

from . import physics as ph
from .mfcc import cube_mfcc_settings, mfcc
from .scenes import (SCENARIOS, Plan, Sensor, plan_sequence, render as render_scene, simulate_sequence, stream,
                     subject_path, walk, waypoint_edges, waypoint_positions)
from .sounds import ACTIONS, Subject, UserSounds, synthesise, synthesise_traced
from .store import (MANIFEST, assign_splits, read_manifest, sequence_entry, sequence_problem,
                    split_record, write_manifest)
from .video import motion_v2, render, render_v2

N_BINS = 512
WINDOW = "tukey:0.75"


@dataclass(frozen=True)
class Preset:
    name: str
    subjects: int
    repetitions: int
    duration: float
    video_size: tuple
    max_order: int
    waypoints: int


PRESETS = {
    "tiny": Preset("tiny", 1, 1, 2.0, (48, 64), 2, 2),
    "small": Preset("small", 3, 1, 10.0, (96, 128), 6, 4),
    "paper": Preset("paper", 9, 1, 30.0, (240, 320), 8, 8),
}


def plan(preset: Preset, seed: int, physics: int = ph.DEFAULT_PHYSICS, sounds: UserSounds | None = None) -> dict:
    """The manifest of a preset: every sequence with its labels, file and split."""
    seqs = []
    for scenario in sorted(SCENARIOS):
        for action in range(len(ACTIONS)):
            for subject in range(preset.subjects):
                for rep in range(preset.repetitions):
                    seqs.append(sequence_entry(action, scenario, subject, rep,
                                               int(round(preset.duration * FRAME_RATE)), FRAME_RATE))
    splits = assign_splits(seqs)
    for s in seqs:
        s["split"] = splits[s["name"]]
    out = {"kind": "acam-dataset", "version": __version__, "physics": physics, "preset": asdict(preset),
           "seed": seed, "sample_freq": SAMPLE_FREQ, "frame_rate": FRAME_RATE, "n_bins": N_BINS,
           "window": WINDOW, "actions": list(ACTIONS), "scenarios": SCENARIOS, "splits": split_record(),
           "sequences": seqs}
    if physics == 2:
        out["bad_mics"] = list(ph.DEAD_MICS)
        out["array_height"] = ph.ARRAY_HEIGHT.value
    if sounds is not None:
        out["sounds"] = {"folder": os.path.abspath(sounds.folder), "digest": sounds.digest()}
    return out


def physics_of(manifest: dict) -> int:
    """The physics version of a dataset (datasets made before versions were recorded are 1)."""
    return int(manifest.get("physics", 1))


def _check_same(folder: str, old: dict, new: dict) -> None:
    for key, what in (("preset", "preset"), ("seed", "seed"), ("physics", "physics"), ("sounds", "sounds")):
        a = old.get(key, 1 if key == "physics" else None)
        b = json.loads(json.dumps(new.get(key)))
        if a != b:
            raise AcamError(f"{folder!r} holds a different dataset ({what} {_short(a)} there, {_short(b)} asked "
                            "for); choose another folder")


def _short(v) -> str:
    if isinstance(v, dict):
        return str(v.get("name", v.get("folder", v)))
    return str(v)


def build(folder, preset: str = "tiny", seed: int = 0, device: str = "auto", cubes: str | None = None,
          keep_raw: bool = False, progress: bool = False, limit: int | None = None,
          scheduler: str | None = None, workers: int | None = None, retries: int = 2, echo=None,
          physics: int = ph.DEFAULT_PHYSICS, sounds=None, only=None) -> dict:
    """Build (or resume building) a dataset in ``folder``; returns the manifest.

    Parameters
    ----------
    cubes : None, "float16" or "float32"
        Also store the full 512-bin cubes (about 3.5 MB per frame in float32).
    keep_raw : bool
        Also store the 128-channel recording.
    limit : int, optional
        Build at most this many missing sequences (to measure a subset).
    scheduler, workers, retries
        Where the sequences (one task each) run: see :func:`acam.core.tasks.run_tasks`.  Every
        sequence has its own seed, so the files are the same wherever they were built.  Failed
        sequences are retried, then named in the :class:`AcamError` raised after the others finish.
    physics : 1 or 2
        The simulation (module docs).
    sounds : str, optional
        A folder of recordings ``<action>/*.wav`` played instead of the synthesised sounds (physics 2).
    only : list of str, optional
        Build only these sequences (names as in the manifest).
    """
    if preset not in PRESETS:
        raise AcamError(f"preset={preset!r} must be one of {', '.join(PRESETS)}")
    if cubes not in (None, "float16", "float32"):
        raise AcamError(f"cubes={cubes!r} must be float16 or float32")
    number("limit", limit, lo=0, integer=True, none_ok=True)
    number("retries", retries, lo=0, integer=True)
    if physics not in ph.PHYSICS_VERSIONS:
        raise AcamError(f"physics={physics!r} must be one of {', '.join(map(str, ph.PHYSICS_VERSIONS))}")
    if sounds is not None and physics != 2:
        raise AcamError("sounds (recordings) need physics=2")
    folder = os.fspath(folder)
    _check_output_folder(folder, sounds)                  # before anything is read or made
    user = UserSounds(sounds) if sounds is not None else None
    p = PRESETS[preset]
    threads = local_threads(workers, scheduler)           # also checks --workers
    backend.check_gpu_workers(device, local_workers(workers, scheduler))
    manifest = plan(p, seed, physics, user)
    names = {s["name"] for s in manifest["sequences"]}
    unknown = sorted(set(only or ()) - names)
    if unknown:
        raise AcamError(f"only={unknown[:3]}: no such sequence in preset {preset} (names look like "
                        f"{manifest['sequences'][0]['name']})")
    made = [x for x in (folder, os.path.join(folder, "sequences"), os.path.join(folder, MANIFEST))
            if not os.path.lexists(x)]
    try:
        return _build(folder, manifest, p, seed, preset, cubes, keep_raw, device, threads, physics, sounds, only,
                      limit, scheduler, workers, retries, progress, echo)
    except BaseException:
        _remove_unused(folder, made)
        raise


def _check_output_folder(folder: str, sounds) -> None:
    """Refuse an output folder that is a file, a training run, a folder of sequence files without a
    manifest (someone else's files), or that lies inside the folder of recordings read."""
    from acam.core.safeio import check_output_folder, folder_kind

    check_output_folder(folder, "output folder", [(sounds, "folder of recordings")])
    if not os.path.isdir(folder):
        return
    if folder_kind(folder) == "run":
        raise AcamError(f"output folder {folder!r} holds a training run (best.pt, last.pt or log.csv), not a "
                        "dataset; choose another folder")
    seq_dir = os.path.join(folder, "sequences")
    if not os.path.lexists(os.path.join(folder, MANIFEST)) and os.path.lexists(seq_dir):
        if not os.path.isdir(seq_dir) or os.listdir(seq_dir):
            raise AcamError(f"{folder!r} holds sequence files but no {MANIFEST} (another dataset, or files "
                            "that are not this build's); choose another folder")


def _remove_unused(folder: str, made: list) -> None:
    """After a failure, remove what this build created when nothing was built into it (a new
    folder, its empty ``sequences`` folder, the manifest it wrote)."""
    import contextlib

    seq_dir = os.path.join(folder, "sequences")
    with contextlib.suppress(OSError):
        if seq_dir in made and os.path.isdir(seq_dir) and os.listdir(seq_dir):
            return
        if os.path.join(folder, MANIFEST) in made and os.path.isfile(os.path.join(folder, MANIFEST)):
            os.unlink(os.path.join(folder, MANIFEST))
        for d in (seq_dir, folder):
            if d in made and os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)


def _build(folder, manifest, p, seed, preset, cubes, keep_raw, device, threads, physics, sounds, only, limit,
           scheduler, workers, retries, progress, echo) -> dict:
    os.makedirs(os.path.join(folder, "sequences"), exist_ok=True)
    if os.path.isfile(os.path.join(folder, MANIFEST)):
        _check_same(folder, read_manifest(folder), manifest)
    write_manifest(folder, manifest)
    # a file under its final name may still be damaged (truncated by a full disk, copied in part):
    # it counts as built only when it opens and holds the frames the manifest lists
    todo = [s for s in manifest["sequences"] if (not only or s["name"] in only)
            and sequence_problem(os.path.join(folder, s["file"]), s)]
    if limit is not None:
        todo = todo[:limit]
    if not todo:
        return manifest
    tasks = [Task(s["name"], _sequence_task, (os.path.join(folder, s["file"]), s, p, seed, cubes, keep_raw,
                                              device, threads, physics, sounds), units=1.0) for s in todo]
    rep = run_tasks(tasks, scheduler, workers, retries, progress, f"building {preset}", echo)
    if echo is not None and fans_out(scheduler, workers):
        echo(rep.summary(tasks, "sequences"))
    rep.raise_failures("sequence(s)", len(todo), "; run the build again to retry them")
    return manifest


def dead_mics(physics: int) -> tuple:
    """Channels that are zero in the recordings of a physics version (and dropped by its beamformer)."""
    return tuple(ph.DEAD_MICS) if physics == 2 else ()


@functools.lru_cache(maxsize=4)
def _beamformer(device: str, threads: int | None, dead: tuple = ()) -> Beamformer:
    """The dataset's beamformer, one per process (its steering matrix is built once); dead
    microphones are dropped from its weights."""
    geometry = default_array()
    weights = np.ones(geometry.n_mics)
    weights[list(dead)] = 0
    return Beamformer(SteeringSpec(geometry, CameraGrid(), SAMPLE_FREQ, N_BINS, weights=weights), FRAME_RATE,
                      WINDOW, device, threads=threads)


def dataset_beamformer(manifest: dict, device: str = "auto", threads: int | None = None) -> Beamformer:
    """The beamformer a dataset's cubes were made with."""
    return _beamformer(device, threads, dead_mics(physics_of(manifest)))


def _sequence_task(path, seq, p, seed, cubes, keep_raw, device, threads, physics=1, sounds=None) -> str:
    user = UserSounds(sounds) if sounds is not None else None
    build_sequence(path, seq, p, _beamformer(device, threads, dead_mics(physics)), seed, cubes, keep_raw,
                   physics, user)
    return path


@dataclass
class Rendered:
    """One simulated sequence before beamforming."""

    raw: np.ndarray             # (n, M) float32, Pa
    mono_mic: int
    track: np.ndarray           # (n_frames, 3) source position per frame
    video: np.ndarray           # (n_frames, H, W, 3) uint8
    edges: np.ndarray           # waypoint segment boundaries, samples
    where: np.ndarray           # waypoint positions (n_segments, 3)
    attrs: dict


def _track(edges, where, n_frames, L) -> np.ndarray:
    frame_mid = (np.arange(n_frames) + 0.5) * L
    return where[np.clip(np.searchsorted(edges, frame_mid, side="right") - 1, 0, len(where) - 1)]


def _render_v1(seq, p: Preset, geometry, grid, seed, sounds=None) -> Rendered:
    action, scenario, subject, rep = seq["action"], seq["scenario"], seq["subject"], seq["repetition"]
    rng = np.random.default_rng([seed, action, scenario, subject, rep])
    fs, L = SAMPLE_FREQ, int(SAMPLE_FREQ / FRAME_RATE)
    n_frames = seq["n_frames"]
    n = n_frames * L
    sound = synthesise(action, n / fs, fs, Subject.draw(subject, seed), rng)
    start, end = subject_path(rng, n / fs, grid)
    raw = simulate_sequence(sound, fs, scenario, geometry, start, end, rng, p.waypoints, p.max_order)
    centre = int(np.argmin(np.linalg.norm(geometry.positions, axis=1)))
    edges = waypoint_edges(n, fs, p.waypoints)
    where = waypoint_positions(start, end, edges)
    track = _track(edges, where, n_frames, L)
    env = np.sqrt(np.mean(sound[:n].reshape(n_frames, L) ** 2, axis=1))
    env = env / (env.max() or 1.0)
    video = render(action, scenario, subject, track, env, p.video_size, grid, rng)
    return Rendered(raw[:n], centre, track, video, edges, where, {})


def plan_v2(seq, p: Preset, grid, seed, sounds: UserSounds | None = None) -> tuple[Plan, object, float]:
    """The v2 scene of a sequence (what plays where), the synthesiser's trace and the subject's stature."""
    action, scenario, subject, rep = seq["action"], seq["scenario"], seq["subject"], seq["repetition"]
    key = (seed, action, scenario, subject, rep)
    fs, L = SAMPLE_FREQ, int(SAMPLE_FREQ / FRAME_RATE)
    n = seq["n_frames"] * L
    who = Subject.draw(subject, seed)
    if sounds is None:
        sound, trace = synthesise_traced(action, n / fs, fs, who, stream(key, "sound"))
    else:
        sound, trace = sounds.signal(action, n, fs, stream(key, "sound"))
    sound = ph.scale_to_laeq(sound, fs, ph.action_level(action, who.loudness))
    stature = ph.stature(subject, seed)
    y = ph.source_height(action, stature) - ph.ARRAY_HEIGHT.value
    start, end = walk(stream(key, "path"), n / fs, grid, y)
    return plan_sequence(sound, fs, scenario, start, end, p.waypoints, key), trace, stature


def _render_v2(seq, p: Preset, geometry, grid, seed, sounds=None) -> Rendered:
    plan, trace, stature = plan_v2(seq, p, grid, seed, sounds)
    sensor = Sensor.draw(seed, geometry.n_mics)
    raw = render_scene(plan, geometry.positions, sensor)["all"]
    fs, L, n_frames = SAMPLE_FREQ, int(SAMPLE_FREQ / FRAME_RATE), seq["n_frames"]
    alive = np.flatnonzero(sensor.alive())
    centre = int(alive[np.argmin(np.linalg.norm(geometry.positions[alive], axis=1))])
    edges = waypoint_edges(plan.n, fs, p.waypoints)
    where = np.array([e.position for e in plan.target.emissions])
    track = _track(edges, where, n_frames, L)
    vrng = stream(plan.key, "video")
    motion = motion_v2(seq["action"], n_frames, fs, FRAME_RATE, trace, vrng)
    video = render_v2(seq["action"], seq["scenario"], seq["subject"], track, motion, stature, p.video_size, grid, vrng)
    attrs = {"level_dba_1m": ph.laeq(plan.target_signal, fs),
             "source_height": float(where[0, 1] + ph.ARRAY_HEIGHT.value),
             "interferers": ",".join(s.kind for s in plan.interferers)}
    return Rendered(raw, centre, track, video, edges, where, attrs)


RENDERERS = {1: _render_v1, 2: _render_v2}


def delay_and_sum(raw: np.ndarray, fs: float, spec: SteeringSpec, edges: np.ndarray, where: np.ndarray,
                  fade: float = 0.05) -> np.ndarray:
    """The delay-and-sum time signal steered at a moving point: segment ``i`` (samples ``edges[i]`` to
    ``edges[i + 1]``, 50 ms linear cross-fades) focused on ``where[i]`` with the steering weights of
    :mod:`acam.beamform.steering` (``distances``, ``steering_weights``: ``spec``'s microphone weights,
    speed of sound and formulation - by default "inverse", so a source at the focus gives its pressure
    at the array centre, Pa).

    Returns
    -------
    np.ndarray [shape=(n,)], float32
    """
    n = raw.shape[0]
    active = spec.active
    mics = spec.geometry.positions[active]
    f_len, pad = int(fade * fs), 64
    out = np.zeros(n)
    for i, p in enumerate(where):
        lo, hi = max(0, edges[i] - f_len), min(n, edges[i + 1] + f_len)
        a, b = max(0, lo - pad), min(n, hi + pad)
        n_fft = 1 << int(np.ceil(np.log2(b - a)))
        X = np.fft.rfft(raw[a:b, active].astype(np.float64), n_fft, axis=0)
        r_pm, r_p0 = distances(p, mics)
        steer = steering_weights(r_pm, r_p0, spec.weights[active], np.fft.rfftfreq(n_fft, 1 / fs),
                                 spec.speed_of_sound, spec.formulation)[:, 0, :]       # (F, M)
        y = np.fft.irfft(np.sum(X * steer, axis=1), n_fft)[lo - a:hi - a]
        ramp = np.ones(hi - lo)
        if i > 0:
            ramp[: 2 * f_len] = np.linspace(0, 1, 2 * f_len)[: len(ramp[: 2 * f_len])]
        if i < len(where) - 1:
            ramp[-2 * f_len:] *= np.linspace(1, 0, 2 * f_len)[-len(ramp[-2 * f_len:]):]
        out[lo:hi] += y * ramp
    return out.astype(np.float32)


def build_sequence(path: str, seq: dict, p: Preset, bf: Beamformer, seed: int, cubes: str | None,
                   keep_raw: bool, physics: int = 1, sounds: UserSounds | None = None) -> None:
    """Simulate, beamform, compress and write one sequence."""
    fs, L = SAMPLE_FREQ, int(SAMPLE_FREQ / FRAME_RATE)
    n_frames = seq["n_frames"]
    n = n_frames * L
    r = RENDERERS[physics](seq, p, bf.spec.geometry, bf.spec.grid, seed, sounds)
    bin_hz, factor = cube_mfcc_settings({"nfft": bf.spec.nfft, "n_bins": bf.spec.n_bins, "window": WINDOW,
                                         "frame_len": L, "sample_freq": fs})
    rows, cols = bf.spec.grid.rows, bf.spec.grid.cols
    with atomic_output(path) as tmp, h5_output(tmp) as f:
        reserve(f, n_frames * rows * cols * (48 + (N_BINS * np.dtype(cubes).itemsize if cubes else 0))
                + n * 4 * (2 + keep_raw * r.raw.shape[1]) + r.video.nbytes + (1 << 20), path)
        d_mfcc = f.create_dataset("mfcc", (n_frames, rows, cols, 12), np.float32)
        d_cube = (f.create_dataset("cube", (n_frames, rows, cols, N_BINS), cubes,
                                   chunks=(1, rows, cols, N_BINS)) if cubes else None)
        frames = r.raw[:n].reshape(n_frames, L, -1)
        for b0 in range(0, n_frames, 64):
            cube = bf.process(frames[b0:b0 + 64])
            d_mfcc[b0:b0 + len(cube)] = backend.to_host(mfcc(cube, bin_hz, factor))
            if d_cube is not None:
                d_cube[b0:b0 + len(cube)] = backend.to_host(cube)
        f.create_dataset("mono", data=r.raw[:n, r.mono_mic])
        if physics == 2:
            f.create_dataset("beam", data=delay_and_sum(r.raw[:n], fs, bf.spec, r.edges, r.where))
            bad = np.zeros(r.raw.shape[1], bool)
            bad[list(dead_mics(physics))] = True
            f.create_dataset("bad_mics", data=bad)
        f.create_dataset("video", data=r.video, chunks=(1,) + r.video.shape[1:], compression="gzip",
                         compression_opts=4)
        f.create_dataset("source_track", data=r.track)
        if keep_raw:
            f.create_dataset("raw", data=r.raw[:n])
        f.attrs.update({"action": seq["action"], "action_name": ACTIONS[seq["action"]],
                        "scenario": seq["scenario"], "subject": seq["subject"], "repetition": seq["repetition"],
                        "sample_freq": fs, "frame_rate": FRAME_RATE, "frame_len": L, "seed": seed,
                        "mono_mic": r.mono_mic, "version": __version__, "window": WINDOW, "n_bins": N_BINS,
                        "physics": physics, **r.attrs})


def preset_of(manifest: dict) -> Preset:
    """The :class:`Preset` recorded in a manifest."""
    p = dict(manifest["preset"])
    p["video_size"] = tuple(p["video_size"])
    return Preset(**p)


def sounds_of(manifest: dict) -> UserSounds | None:
    """The recordings a dataset was built from (checked unchanged), or None."""
    rec = manifest.get("sounds")
    if not rec:
        return None
    user = UserSounds(rec["folder"])
    if user.digest() != rec["digest"]:
        raise AcamError(f"the recordings in {rec['folder']!r} changed since the dataset was built")
    return user


def sequence_stems(seq: dict, manifest: dict, geometry=None, grid=None) -> tuple[dict, int, np.ndarray]:
    """A built sequence's recording re-rendered in parts - ``target``, ``interferers``, ``noise``
    (n, M) float32, summing to the recording - with its mono microphone and source track."""
    geometry = geometry or default_array()
    grid = grid or CameraGrid()
    physics, seed, p = physics_of(manifest), int(manifest["seed"]), preset_of(manifest)
    fs, L = SAMPLE_FREQ, int(SAMPLE_FREQ / FRAME_RATE)
    n = seq["n_frames"] * L
    if physics == 1:
        rng = np.random.default_rng([seed, seq["action"], seq["scenario"], seq["subject"], seq["repetition"]])
        sound = synthesise(seq["action"], n / fs, fs, Subject.draw(seq["subject"], seed), rng)
        start, end = subject_path(rng, n / fs, grid)
        stems = simulate_sequence(sound, fs, seq["scenario"], geometry, start, end, rng, p.waypoints,
                                  p.max_order, stems=True)
        edges = waypoint_edges(n, fs, p.waypoints)
        where = waypoint_positions(start, end, edges)
        centre = int(np.argmin(np.linalg.norm(geometry.positions, axis=1)))
        return stems, centre, _track(edges, where, seq["n_frames"], L)
    plan, _, _ = plan_v2(seq, p, grid, seed, sounds_of(manifest))
    sensor = Sensor.draw(seed, geometry.n_mics)
    stems = render_scene(plan, geometry.positions, sensor, separate=True)
    alive = np.flatnonzero(sensor.alive())
    centre = int(alive[np.argmin(np.linalg.norm(geometry.positions[alive], axis=1))])
    where = np.array([e.position for e in plan.target.emissions])
    return stems, centre, _track(waypoint_edges(n, fs, p.waypoints), where, seq["n_frames"], L)
