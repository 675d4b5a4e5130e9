"""The dataset on disk: one HDF5 file per sequence, a manifest, splits, crops and lazy readers.

Layout of a dataset folder::

    manifest.json              config, one entry per sequence (labels, file, split, frames)
    sequences/<name>.h5        one file per sequence (schema below)

Sequence file schema (shapes, dtypes, units):

| dataset | shape | dtype | content |
|---|---|---|---|
| ``mfcc`` | (n_frames, 36, 48, 12) | float32 | MFCC cube (:mod:`dataset.mfcc`) |
| ``cube`` (optional) | (n_frames, 36, 48, 512) | float16/32 | acoustic cube, one-sided power per bin |
| ``mono`` | (n_samples,) | float32 | the single-microphone track (the microphone nearest the array centre), Pa |
| ``video`` | (n_frames, H, W, 3) | uint8, gzip | RGB frames, 12 fps, frame t aligned with audio samples [t L, (t+1) L) |
| ``source_track`` | (n_frames, 3) | float64 | ground-truth source position per frame, metres, array frame |
| ``raw`` (optional) | (n_samples, 128) | float32 | the array recording |

Attributes: ``action`` (0-13, index into :data:`dataset.sounds.ACTIONS`), ``action_name``,
``scenario`` (1-3), ``subject`` (0-based), ``repetition``, ``sample_freq``, ``frame_rate``,
``frame_len``, ``seed``, ``version``.

Splits follow the paper's appendix: sequences are cut into 10 s blocks; the recordings are shuffled
with seed 42 and divided 80/10/10 into train/val/test, so all blocks (and crops) of a recording
share its split.  Crops are drawn at fixed positions from a seed; a sequence shorter than a crop is
repeated cyclically (as the authors did for short clips).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from acam.core.errors import AcamError, FormatError
from acam.core.h5read import attr_number, check_storage, dataset
from acam.core.safeio import open_h5, read_bytes, write_text

MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")
SPLIT_SEED = 42
BLOCK_SECONDS = 10.0
FIELDS = ("mfcc", "cube", "mono", "video", "label", "source_track")


def sequence_name(action: int, scenario: int, subject: int, repetition: int) -> str:
    return f"a{action:02d}_s{scenario}_p{subject:02d}_r{repetition}"


def assign_splits(names: list[str], seed: int = SPLIT_SEED, fractions=(0.8, 0.1, 0.1)) -> dict[str, str]:
    """Recording -> split, shuffled with ``seed`` and cut 80/10/10 (by recording, never by crop)."""
    order = np.random.default_rng(seed).permutation(len(names))
    n = len(names)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    out = {}
    for rank, i in enumerate(order):
        out[names[i]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return out


def write_manifest(folder: str, manifest: dict) -> None:
    path = os.path.join(folder, MANIFEST)
    write_text(path, json.dumps(manifest, indent=1))


MAX_MANIFEST = 64 << 20          # bytes
# field -> (type, lowest, highest) of a manifest's sequence entry
SEQ_FIELDS = {"name": (str, None, None), "file": (str, None, None), "action": (int, 0, 13),
              "scenario": (int, 1, 3), "subject": (int, 0, 999), "split": (str, None, None),
              "n_frames": (int, 1, 10 ** 8)}


def read_manifest(folder: str) -> dict:
    """The manifest of a dataset folder, checked: a ``sequences`` list whose entries carry every
    field with the right type and range, and files that stay inside the folder."""
    folder = os.fspath(folder)
    path = os.path.join(folder, MANIFEST)
    if not os.path.lexists(path):
        raise AcamError(f"{folder!r} is not a dataset folder (no {MANIFEST})")
    try:
        text = read_bytes(path, "manifest", MAX_MANIFEST, register=False).decode("utf-8")   # updated in place
        m = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise FormatError(f"{path}: not a valid manifest ({str(exc).splitlines()[0]})") from None
    if not isinstance(m, dict):
        raise FormatError(f"{path}: not a manifest (a JSON object is expected, found {type(m).__name__})")
    if not isinstance(m.get("sequences"), list):
        raise FormatError(f"{path}: no 'sequences' list")
    for key in ("frame_rate", "sample_freq"):
        if key in m and not (isinstance(m[key], (int, float)) and not isinstance(m[key], bool)
                             and 0 < m[key] < float("inf")):
            raise FormatError(f"{path}: {key}={m[key]!r} is not a positive number")
    names = set()
    for i, seq in enumerate(m["sequences"]):
        _check_entry(seq, i, path, folder)
        if seq["name"] in names:
            raise FormatError(f"{path}: sequence {seq['name']!r} is listed twice")
        names.add(seq["name"])
    return m


def _check_entry(seq, i: int, path: str, folder: str) -> None:
    if not isinstance(seq, dict):
        raise FormatError(f"{path}: sequences[{i}] is not an object")
    for key, (kind, lo, hi) in SEQ_FIELDS.items():
        v = seq.get(key)
        if not isinstance(v, kind) or isinstance(v, bool):
            raise FormatError(f"{path}: sequences[{i}] field {key!r}={v!r} is missing or not {kind.__name__}")
        if lo is not None and not lo <= v <= hi:
            raise FormatError(f"{path}: sequences[{i}] {key}={v} is outside {lo}..{hi}")
    if seq["split"] not in SPLITS:
        raise FormatError(f"{path}: sequences[{i}] split={seq['split']!r} is not one of {', '.join(SPLITS)}")
    root = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(folder, seq["file"]))
    if os.path.isabs(seq["file"]) or os.path.commonpath([root, target]) != root:
        raise FormatError(f"{path}: sequences[{i}] file {seq['file']!r} lies outside the dataset folder; refused")


def sequence_problem(path: str, seq: dict) -> str | None:
    """Why the sequence file at ``path`` is not a complete file of ``seq`` (None if it is): missing,
    unreadable (truncated), or without the frames the manifest lists.  One file opened, no data read."""
    if not os.path.isfile(path):
        return "missing"
    try:
        with h5py.File(path, "r") as f:
            for name in ("mfcc", "video", "mono"):
                if name not in f:
                    return f"no {name!r} dataset"
                check_storage(f[name], name, path)
            if f["mfcc"].shape[0] != seq["n_frames"] or f["video"].shape[0] != seq["n_frames"]:
                return f"{f['mfcc'].shape[0]} frames, the manifest lists {seq['n_frames']}"
            if attr_number(f, "action", path) != seq["action"]:
                return "another action than the manifest's"
    except (OSError, FormatError, KeyError, ValueError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


@dataclass(frozen=True)
class Crop:
    """A crop of a sequence: ``n_frames`` frames from ``start`` (wrapping cyclically)."""

    file: str
    start: int
    n_frames: int
    action: int
    scenario: int
    subject: int
    sequence: str


class Dataset:
    """A dataset folder: sequences, splits and crops.

    Parameters
    ----------
    folder : str
        A folder with a manifest (made by ``acam dataset build`` or an importer).
    """

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.manifest = read_manifest(self.folder)
        self.sequences = self.manifest["sequences"]

    def path(self, seq: dict) -> str:
        return os.path.join(self.folder, seq["file"])

    def available(self, verify: bool = False) -> list[dict]:
        """Sequences whose file exists (a build may be partial); with ``verify``, whose file is
        also complete (:func:`sequence_problem`)."""
        if verify:
            return [s for s in self.sequences if sequence_problem(self.path(s), s) is None]
        return [s for s in self.sequences if os.path.isfile(self.path(s))]

    def select(self, split: str | None = None, scenarios=None) -> list[dict]:
        """Available sequences of a split (None: all) and of the given scenarios (None: all)."""
        if split is not None and split not in SPLITS:
            raise AcamError(f"split={split!r} must be one of {', '.join(SPLITS)}")
        out = self.available()
        if split is not None:
            out = [s for s in out if s["split"] == split]
        if scenarios is not None:
            sc = {int(x) for x in scenarios}
            out = [s for s in out if s["scenario"] in sc]
        return out

    def crops(self, split: str | None, seconds: float, per_sequence: int, seed: int = 0,
              scenarios=None) -> list[Crop]:
        """Fixed-position crops: ``per_sequence`` crops of ``seconds`` from each sequence, positions
        drawn from ``seed`` and the sequence's name (the same for every epoch and every run)."""
        fr = float(self.manifest.get("frame_rate", 12.0))
        n = max(1, int(round(seconds * fr)))
        out = []
        for s in self.select(split, scenarios):
            total = int(s["n_frames"])
            rng = np.random.default_rng([seed, _stable_hash(s["name"])])
            starts = rng.integers(0, max(1, total - n + 1), per_sequence)
            out += [Crop(self.path(s), int(st), n, s["action"], s["scenario"], s["subject"], s["name"])
                    for st in starts]
        return out

    def info(self) -> dict:
        """Counts per action, scenario, subject and split, and sizes on disk."""
        avail = self.available(verify=True)
        count = lambda key: {str(k): sum(1 for s in avail if s[key] == k)  # noqa: E731
                             for k in sorted({s[key] for s in self.sequences})}
        size = sum(os.path.getsize(self.path(s)) for s in avail)
        return {"sequences": len(self.sequences), "built": len(avail),
                "per_action": count("action"), "per_scenario": count("scenario"),
                "per_subject": count("subject"), "per_split": count("split"),
                "frames": sum(int(s["n_frames"]) for s in avail),
                "seconds": sum(int(s["n_frames"]) for s in avail) / float(self.manifest.get("frame_rate", 12)),
                "bytes": size}


def _stable_hash(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def read_crop(crop: Crop, fields=("mfcc", "label")) -> dict:
    """The requested fields of one crop, read lazily from its file (only the crop's frames).

    Fields: ``mfcc`` (n, 36, 48, 12), ``cube`` (n, 36, 48, 512), ``mono`` (n * frame_len,),
    ``video`` (n, H, W, 3), ``source_track`` (n, 3), ``label`` (action index).
    """
    bad = [f for f in fields if f not in FIELDS]
    if bad:
        raise AcamError(f"unknown crop fields {bad}; choose from {', '.join(FIELDS)}")
    out = {}
    with open_h5(crop.file, "sequence file") as f:
        try:
            return _read_crop(f, crop, fields, out)
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise FormatError(f"{crop.file}: cannot read crop ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None


def _read_crop(f, crop: Crop, fields, out: dict) -> dict:
    first = "mfcc" if "mfcc" in f else "video"
    n_total = dataset(f, first, crop.file).shape[0]
    if n_total < 1:
        raise FormatError(f"{crop.file}: '{first}' holds no frames")
    idx = (crop.start + np.arange(crop.n_frames)) % n_total
    contiguous = idx[-1] >= idx[0] and len(idx) == idx[-1] - idx[0] + 1
    for name in fields:
        if name == "label":
            out[name] = int(attr_number(f, "action", crop.file))
            continue
        if name not in f:
            raise FormatError(f"{crop.file}: no {name!r} dataset (build with it, or ask for another field)")
        d = dataset(f, name, crop.file)
        if name == "mono":
            L = int(attr_number(f, "frame_len", crop.file, positive=True))
            sidx = (idx[:, None] * L + np.arange(L)[None, :]).reshape(-1)
            if contiguous:
                out[name] = d[idx[0] * L:(idx[-1] + 1) * L]
            else:
                out[name] = d[()][sidx]
        elif contiguous:
            out[name] = d[idx[0]:idx[-1] + 1]
        else:
            data = d[()] if d.shape[0] * np.prod(d.shape[1:]) < 5e7 else None
            out[name] = data[idx] if data is not None else np.stack([d[i] for i in idx])
    return out
