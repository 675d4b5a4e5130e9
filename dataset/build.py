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
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass

import h5py
import numpy as np

from acam import __version__
from acam.beamform import backend
from acam.beamform import Beamformer, CameraGrid, SteeringSpec, default_array
from acam.core.tasks import Task, fans_out, local_threads, local_workers, run_tasks
from acam.core.checks import number
from acam.core.errors import AcamError
from acam.beamform.io import atomic_output
from acam.core.safeio import h5_output, reserve

from .mfcc import cube_mfcc_settings, mfcc
from .scenes import SCENARIOS, simulate_sequence, subject_path, waypoint_edges, waypoint_positions
from .sounds import ACTIONS, Subject, synthesise
from .store import MANIFEST, assign_splits, read_manifest, sequence_name, sequence_problem, write_manifest
from .video import render
from acam.beamform.sensor import FRAME_RATE, SAMPLE_FREQ

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


def plan(preset: Preset, seed: int) -> dict:
    """The manifest of a preset: every sequence with its labels, file and split."""
    seqs = []
    for scenario in sorted(SCENARIOS):
        for action in range(len(ACTIONS)):
            for subject in range(preset.subjects):
                for rep in range(preset.repetitions):
                    name = sequence_name(action, scenario, subject, rep)
                    seqs.append({"name": name, "file": f"sequences/{name}.h5", "action": action,
                                 "action_name": ACTIONS[action], "scenario": scenario,
                                 "subject": subject, "repetition": rep,
                                 "n_frames": int(round(preset.duration * FRAME_RATE))})
    splits = assign_splits([s["name"] for s in seqs])
    for s in seqs:
        s["split"] = splits[s["name"]]
        s["blocks"] = max(1, int(np.ceil(s["n_frames"] / FRAME_RATE / 10.0)))
    return {"kind": "acam-dataset", "version": __version__, "preset": asdict(preset),
            "seed": seed, "sample_freq": SAMPLE_FREQ, "frame_rate": FRAME_RATE, "n_bins": N_BINS,
            "window": WINDOW, "actions": list(ACTIONS), "scenarios": SCENARIOS, "sequences": seqs}


def build(folder, preset: str = "tiny", seed: int = 0, device: str = "auto", cubes: str | None = None,
          keep_raw: bool = False, progress: bool = False, limit: int | None = None,
          scheduler: str | None = None, workers: int | None = None, retries: int = 2, echo=None) -> dict:
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
    """
    if preset not in PRESETS:
        raise AcamError(f"preset={preset!r} must be one of {', '.join(PRESETS)}")
    if cubes not in (None, "float16", "float32"):
        raise AcamError(f"cubes={cubes!r} must be float16 or float32")
    number("limit", limit, lo=0, integer=True, none_ok=True)
    p = PRESETS[preset]
    threads = local_threads(workers, scheduler)           # also checks --workers
    backend.check_gpu_workers(device, local_workers(workers, scheduler))
    folder = os.fspath(folder)
    os.makedirs(os.path.join(folder, "sequences"), exist_ok=True)
    manifest = plan(p, seed)
    if os.path.isfile(os.path.join(folder, MANIFEST)):
        old = read_manifest(folder)
        if old.get("preset") != json.loads(json.dumps(manifest["preset"])) or old.get("seed") != seed:
            raise AcamError(f"{folder!r} holds a different dataset (preset {old.get('preset', {}).get('name')}, "
                            f"seed {old.get('seed')}); choose another folder")
    write_manifest(folder, manifest)
    # a file under its final name may still be damaged (truncated by a full disk, copied in part):
    # it counts as built only when it opens and holds the frames the manifest lists
    todo = [s for s in manifest["sequences"] if sequence_problem(os.path.join(folder, s["file"]), s)]
    if limit is not None:
        todo = todo[:limit]
    if not todo:
        return manifest
    tasks = [Task(s["name"], _sequence_task, (os.path.join(folder, s["file"]), s, p, seed, cubes, keep_raw,
                                              device, threads), units=1.0) for s in todo]
    rep = run_tasks(tasks, scheduler, workers, retries, progress, f"building {preset}", echo)
    if echo is not None and fans_out(scheduler, workers):
        echo(rep.summary(tasks, "sequences"))
    rep.raise_failures("sequence(s)", len(todo), "; run the build again to retry them")
    return manifest


@functools.lru_cache(maxsize=4)
def _beamformer(device: str, threads: int | None) -> Beamformer:
    """The dataset's beamformer, one per process (its steering matrix is built once)."""
    return Beamformer(SteeringSpec(default_array(), CameraGrid(), SAMPLE_FREQ, N_BINS), FRAME_RATE, WINDOW,
                      device, threads=threads)


def _sequence_task(path, seq, p, seed, cubes, keep_raw, device, threads) -> str:
    build_sequence(path, seq, p, _beamformer(device, threads), seed, cubes, keep_raw)
    return path


def build_sequence(path: str, seq: dict, p: Preset, bf: Beamformer, seed: int, cubes: str | None,
                   keep_raw: bool) -> None:
    """Simulate, beamform, compress and write one sequence."""
    action, scenario, subject, rep = seq["action"], seq["scenario"], seq["subject"], seq["repetition"]
    rng = np.random.default_rng([seed, action, scenario, subject, rep])
    fs, L = SAMPLE_FREQ, int(SAMPLE_FREQ / FRAME_RATE)
    n_frames = seq["n_frames"]
    n = n_frames * L
    geometry, grid = bf.spec.geometry, bf.spec.grid
    sound = synthesise(action, n / fs, fs, Subject.draw(subject, seed), rng)
    start, end = subject_path(rng, n / fs, grid)
    raw = simulate_sequence(sound, fs, scenario, geometry, start, end, rng, p.waypoints, p.max_order)
    centre = int(np.argmin(np.linalg.norm(geometry.positions, axis=1)))
    edges = waypoint_edges(n, fs, p.waypoints)
    where = waypoint_positions(start, end, edges)
    frame_mid = (np.arange(n_frames) + 0.5) * L
    track = where[np.clip(np.searchsorted(edges, frame_mid, side="right") - 1, 0, len(where) - 1)]
    env = np.sqrt(np.mean(sound[:n].reshape(n_frames, L) ** 2, axis=1))
    env = env / (env.max() or 1.0)
    video = render(action, scenario, subject, track, env, p.video_size, grid, rng)
    bin_hz, factor = cube_mfcc_settings({"nfft": bf.spec.nfft, "n_bins": bf.spec.n_bins, "window": WINDOW,
                                         "frame_len": L, "sample_freq": fs})
    rows, cols = grid.rows, grid.cols
    with atomic_output(path) as tmp, h5_output(tmp) as f:
        reserve(f, n_frames * rows * cols * (48 + (N_BINS * np.dtype(cubes).itemsize if cubes else 0))
                + n * 4 * (1 + keep_raw * raw.shape[1]) + video.nbytes + (1 << 20), path)
        d_mfcc = f.create_dataset("mfcc", (n_frames, rows, cols, 12), np.float32)
        d_cube = (f.create_dataset("cube", (n_frames, rows, cols, N_BINS), cubes,
                                   chunks=(1, rows, cols, N_BINS)) if cubes else None)
        frames = raw[:n].reshape(n_frames, L, -1)
        for b0 in range(0, n_frames, 64):
            cube = bf.process(frames[b0:b0 + 64])
            d_mfcc[b0:b0 + len(cube)] = backend.to_host(mfcc(cube, bin_hz, factor))
            if d_cube is not None:
                d_cube[b0:b0 + len(cube)] = backend.to_host(cube)
        f.create_dataset("mono", data=raw[:n, centre])
        f.create_dataset("video", data=video, chunks=(1,) + video.shape[1:], compression="gzip",
                         compression_opts=4)
        f.create_dataset("source_track", data=track)
        if keep_raw:
            f.create_dataset("raw", data=raw[:n])
        f.attrs.update({"action": action, "action_name": ACTIONS[action], "scenario": scenario,
                        "subject": subject, "repetition": rep, "sample_freq": fs,
                        "frame_rate": FRAME_RATE, "frame_len": L, "seed": seed, "mono_mic": centre,
                        "version": __version__, "window": WINDOW, "n_bins": N_BINS})
