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
from acam.beamform.io import atomic_output

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
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)


def read_manifest(folder: str) -> dict:
    path = os.path.join(os.fspath(folder), MANIFEST)
    if not os.path.isfile(path):
        raise AcamError(f"{folder!r} is not a dataset folder (no {MANIFEST})")
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: not a valid manifest ({exc})") from None
    if "sequences" not in m:
        raise FormatError(f"{path}: no 'sequences' list")
    return m


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

    def available(self) -> list[dict]:
        """Sequences whose file exists (a build may be partial)."""
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
        avail = self.available()
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
    with h5py.File(crop.file, "r") as f:
        n_total = f["mfcc"].shape[0] if "mfcc" in f else f["video"].shape[0]
        idx = (crop.start + np.arange(crop.n_frames)) % n_total
        contiguous = idx[-1] >= idx[0] and len(idx) == idx[-1] - idx[0] + 1
        for name in fields:
            if name == "label":
                out[name] = int(f.attrs["action"])
                continue
            if name not in f:
                raise FormatError(f"{crop.file}: no {name!r} dataset (build with it, or ask for another field)")
            d = f[name]
            if name == "mono":
                L = int(f.attrs["frame_len"])
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
