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
| ``beam`` (physics v2) | (n_samples,) | float32 | delay-and-sum signal steered at ``source_track``, Pa |

Attributes: ``action`` (0-13, index into :data:`dataset.sounds.ACTIONS`), ``action_name``,
``scenario`` (1-3), ``subject`` (0-based), ``repetition``, ``sample_freq``, ``frame_rate``,
``frame_len``, ``seed``, ``version``.

Splits (:func:`assign_splits`, recorded in the manifest as ``splits``) are by whole recording,
stratified by scenario x action: every (scenario, action) cell with at least 3 sequences puts
10% (at least one) into validation, 10% (at least one) into test and the rest into training;
smaller cells fill training first, then validation.  A scenario whose cells are all too small to
cover the three splits (the ``tiny`` preset: one sequence per cell) gives one cell in ten to
validation and one in ten to test (at least one each) - a smoke-test split, not one to report.
Each cell is shuffled with its own seed (``[seed, scenario, action]``), so a cell's split does not
depend on the other cells.  ``split_method="blocks"`` is instead the authors' published split
(:func:`block_splits`): recordings cut into 10 s blocks, one list per training set (each scenario
alone, and all scenarios), each shuffled with NumPy's legacy ``RandomState(42)`` in (scenario,
subject, action, repetition, block) order and cut 80/10/10 with truncation; blocks of one recording
can land in different splits.  Manifests written before the stratified split (no ``splits``
record) are re-split in memory when loaded, with a note on stderr; the file is never rewritten.

Crops are drawn at fixed positions from a seed; a sequence shorter than a crop is repeated
cyclically (as the authors did for short clips).  Windows tile each sequence (or block) with
non-overlapping crops from its first frame, as the authors' inference mode does.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import h5py
import numpy as np

from acam.core.errors import AcamError, FormatError
from acam.core.h5read import attr_number, check_storage, dataset
from acam.core.safeio import folder_kind, open_h5, parse_json, read_bytes, register_tree, write_text

MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")
SPLIT_SEED = 42
SPLIT_VERSION = 2
SPLIT_METHODS = ("stratified", "blocks")
BLOCK_SECONDS = 10.0
FIELDS = ("mfcc", "cube", "mono", "beam", "video", "label", "source_track")
MISSING = {"beam": "the oracle control needs a dataset built with physics v2, which stores the "
                   "beamformed signal of the true source"}
_NOTED: set = set()       # folders whose old split was already reported in this process


def sequence_name(action: int, scenario: int, subject: int, repetition: int) -> str:
    return f"a{action:02d}_s{scenario}_p{subject:02d}_r{repetition}"


def sequence_entry(action: int, scenario: int, subject: int, repetition: int, n_frames: int,
                   frame_rate: float) -> dict:
    """A sequence's manifest entry (before its split is assigned): name, file, labels, frames, and
    ``blocks``, its count of the authors' 10 s blocks (at least one).  The one place it is built:
    simulated and imported datasets alike."""
    from .sounds import ACTIONS          # here: scipy.signal is slow to import and store is imported often

    name = sequence_name(action, scenario, subject, repetition)
    per = max(1, int(round(BLOCK_SECONDS * frame_rate)))
    return {"name": name, "file": f"sequences/{name}.h5", "action": int(action),
            "action_name": ACTIONS[action] if 0 <= action < len(ACTIONS) else "", "scenario": int(scenario),
            "subject": int(subject), "repetition": int(repetition), "n_frames": int(n_frames),
            "blocks": max(1, -(-int(n_frames) // per))}


def _cell_split(n: int) -> list[str]:
    """Splits of a cell's ``n`` shuffled sequences (train last so that a cell of 3 is 1/1/1)."""
    if n < 3:
        return (["train", "val"])[:n]
    n_val = n_test = max(1, int(round(0.1 * n)))
    return ["val"] * n_val + ["test"] * n_test + ["train"] * (n - n_val - n_test)


def assign_splits(seqs: list[dict], seed: int = SPLIT_SEED) -> dict[str, str]:
    """Recording -> split, stratified by scenario x action (see the module notes).

    ``seqs``: manifest entries with ``name``, ``scenario`` and ``action``.  Deterministic for a seed;
    a cell's split does not depend on the other cells.
    """
    cells: dict = {}
    for s in seqs:
        cells.setdefault((int(s["scenario"]), int(s["action"])), []).append(s["name"])
    out: dict[str, str] = {}
    for (scenario, action), names in sorted(cells.items()):
        names = sorted(names)
        order = np.random.default_rng([seed, scenario, action]).permutation(len(names))
        for name, split in zip((names[i] for i in order), _cell_split(len(names))):
            out[name] = split
    for scenario in sorted({k[0] for k in cells}):
        _cover_small_scenario(out, {k[1]: v for k, v in cells.items() if k[0] == scenario}, seed, scenario)
    return out


def _cover_small_scenario(out: dict, cells: dict, seed: int, scenario: int) -> None:
    """A scenario with no validation or no test sequence (all cells too small): one cell in ten,
    at least one, gives its first training sequence to each missing split."""
    names = [n for v in cells.values() for n in v]
    missing = [sp for sp in ("val", "test") if not any(out[n] == sp for n in names)]
    if not missing:
        return
    actions = sorted(cells)
    order = [actions[i] for i in np.random.default_rng([seed, scenario, 99]).permutation(len(actions))]
    k = max(1, int(round(0.1 * len(actions))))
    donors = [a for a in order if any(out[n] == "train" for n in cells[a])]
    for i, split in enumerate(missing):
        for a in donors[i * k:(i + 1) * k]:
            first = next(n for n in sorted(cells[a]) if out[n] == "train")
            out[first] = split


def split_record(seed: int = SPLIT_SEED) -> dict:
    """What a manifest records about its split (``manifest["splits"]``)."""
    return {"method": "stratified", "by": "scenario x action", "seed": int(seed), "version": SPLIT_VERSION}


def block_splits(seqs: list[dict], seed: int = SPLIT_SEED, frame_rate: float = 12.0,
                 seconds: float = BLOCK_SECONDS) -> dict[str, dict[tuple, str]]:
    """The authors' published split: ``{list: {(name, block): split}}`` for the lists ``all``,
    ``1``, ``2``, ``3`` (one per training set).

    As ``utils/generate_lists.py`` of their code: blocks of ``seconds`` in (scenario, subject,
    action, repetition, block) order, ``RandomState(seed).permutation``, then ``int(0.8 n)`` train,
    ``int(0.1 n)`` validation and the rest test - separately for each list.
    """
    per = max(1, int(round(seconds * frame_rate)))
    blocks = []
    for s in sorted(seqs, key=lambda s: (int(s["scenario"]), int(s["subject"]), int(s["action"]),
                                          int(s.get("repetition", 0)), s["name"])):
        for b in range(max(1, -(-int(s["n_frames"]) // per))):
            blocks.append((int(s["scenario"]), s["name"], b))
    out = {}
    for key in ("all", "1", "2", "3"):
        mine = [(name, b) for sc, name, b in blocks if key == "all" or str(sc) == key]
        n = len(mine)
        order = np.random.RandomState(seed).permutation(n) if n else []
        n_train, n_val = int(n * 0.8), int(n * 0.1)
        out[key] = {mine[i]: ("train" if r < n_train else "val" if r < n_train + n_val else "test")
                    for r, i in enumerate(order)}
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
        if os.path.isdir(folder) and folder_kind(folder) == "run":
            raise AcamError(f"{folder!r} is a training run folder, not a dataset folder (no {MANIFEST})")
        raise AcamError(f"{folder!r} is not a dataset folder (no {MANIFEST})")
    m = parse_json(read_bytes(path, "manifest", MAX_MANIFEST, register=False), path, "valid manifest")  # updated in place
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
    if "actions" in m:
        acts = m["actions"]
        top = max((s["action"] for s in m["sequences"]), default=-1)
        if not isinstance(acts, list) or not all(isinstance(a, str) for a in acts):
            raise FormatError(f"{path}: 'actions' is not a list of action names")
        if len(acts) <= top:
            raise FormatError(f"{path}: 'actions' names {len(acts)} actions, but the sequences use action {top}")
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


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, start + n_frames)`` of a sequence that belong to one split (a whole
    recording, or one 10 s block with ``split_method="blocks"``)."""

    seq: dict
    start: int
    n_frames: int


class Dataset:
    """A dataset folder: sequences, splits, crops and windows.

    Parameters
    ----------
    folder : str
        A folder with a manifest (made by ``acam dataset build`` or an importer).
    split_method : str
        ``stratified`` (the manifest's split, see the module notes) or ``blocks`` (the authors'
        10 s block split, computed from the manifest on load).
    """

    def __init__(self, folder, split_method: str = "stratified"):
        if split_method not in SPLIT_METHODS:
            raise AcamError(f"split_method={split_method!r} must be one of {', '.join(SPLIT_METHODS)}")
        self.folder = os.fspath(folder)
        self.manifest = read_manifest(self.folder)
        register_tree(self.folder, "dataset folder")      # no output of the command may land inside it
        self.sequences = self.manifest["sequences"]
        self.split_method = split_method
        self.frame_rate = float(self.manifest.get("frame_rate", 12.0))
        rec = self.manifest.get("splits")
        if not isinstance(rec, dict) or rec.get("version") != SPLIT_VERSION:
            self._resplit()
        self._blocks = None

    def _resplit(self) -> None:
        """An older manifest: its global, unstratified split is replaced in memory (never on disk)."""
        splits = assign_splits(self.sequences)
        moved = sum(1 for s in self.sequences if s.get("split") != splits[s["name"]])
        self.sequences = [{**s, "split": splits[s["name"]]} for s in self.sequences]
        self.manifest = {**self.manifest, "sequences": self.sequences, "splits": split_record()}
        key = os.path.abspath(self.folder)
        if key not in _NOTED:
            _NOTED.add(key)
            sys.stderr.write(f"note: {self.folder}: the manifest predates the stratified split; re-split in "
                             f"memory by scenario x action (seed {SPLIT_SEED}), {moved} of "
                             f"{len(self.sequences)} sequences changed split; the manifest is left as it is\n")

    def path(self, seq: dict) -> str:
        return os.path.join(self.folder, seq["file"])

    def available(self, verify: bool = False) -> list[dict]:
        """Sequences whose file exists (a build may be partial); with ``verify``, whose file is
        also complete (:func:`sequence_problem`)."""
        if verify:
            return [s for s in self.sequences if sequence_problem(self.path(s), s) is None]
        return [s for s in self.sequences if os.path.isfile(self.path(s))]

    def select(self, split: str | None = None, scenarios=None) -> list[dict]:
        """Available sequences of a (stratified) split (None: all) and of the given scenarios (None: all)."""
        if split is not None and split not in SPLITS:
            raise AcamError(f"split={split!r} must be one of {', '.join(SPLITS)}")
        out = self.available()
        if split is not None:
            out = [s for s in out if s["split"] == split]
        if scenarios is not None:
            sc = {int(x) for x in scenarios}
            out = [s for s in out if s["scenario"] in sc]
        return out

    def segments(self, split: str | None, scenarios=None, train_on=None) -> list[Segment]:
        """The parts of the available sequences of ``scenarios`` that lie in ``split`` (None: whole
        sequences, whatever their split).  ``train_on`` names the training set whose list decides
        the split with ``split_method="blocks"`` (one scenario, or all three)."""
        if split is None or self.split_method == "stratified":
            return [Segment(s, 0, int(s["n_frames"])) for s in self.select(split, scenarios)]
        if split not in SPLITS:
            raise AcamError(f"split={split!r} must be one of {', '.join(SPLITS)}")
        key = _list_key(train_on)
        if self._blocks is None:
            self._blocks = block_splits(self.sequences, SPLIT_SEED, self.frame_rate)
        per = int(round(BLOCK_SECONDS * self.frame_rate))
        out = []
        for s in self.select(None, scenarios):
            total = int(s["n_frames"])
            for b in range(max(1, -(-total // per))):
                if self._blocks[key].get((s["name"], b)) == split:
                    out.append(Segment(s, b * per, min(per, total - b * per)))
        return out

    def crops(self, split: str | None, seconds: float, per_sequence: int, seed: int = 0,
              scenarios=None, train_on=None) -> list[Crop]:
        """Fixed-position crops: ``per_sequence`` crops of ``seconds`` from each segment (a whole
        sequence; a block with ``split_method="blocks"``, as the authors' 10 s groups), positions
        drawn from ``seed`` and the sequence's name (the same for every epoch and every run)."""
        n = max(1, int(round(seconds * self.frame_rate)))
        out = []
        for g in self.segments(split, scenarios, train_on):
            rng = np.random.default_rng([seed, _stable_hash(g.seq["name"]), g.start])
            starts = g.start + rng.integers(0, max(1, g.n_frames - n + 1), per_sequence)
            out += [self.crop(g.seq, int(st), n) for st in starts]
        return out

    def windows(self, split: str | None, seconds: float, scenarios=None, train_on=None) -> list[Crop]:
        """Non-overlapping windows of ``seconds`` tiling each segment from its first frame:
        ``max(1, frames // window)`` per segment (a segment shorter than a window gives one window
        that repeats it cyclically)."""
        n = max(1, int(round(seconds * self.frame_rate)))
        return [self.crop(g.seq, g.start + i * n, n) for g in self.segments(split, scenarios, train_on)
                for i in range(max(1, g.n_frames // n))]

    def crop(self, s: dict, start: int, n: int) -> Crop:
        """A crop of ``n`` frames of sequence ``s`` from frame ``start``."""
        return Crop(self.path(s), start, n, s["action"], s["scenario"], s["subject"], s["name"])

    def split_counts(self, scenarios=None, train_on=None) -> dict:
        """Sequences (and segments) per split for a training set's list."""
        out = {}
        for sp in SPLITS:
            segs = self.segments(sp, scenarios, train_on)
            out[sp] = {"sequences": len({g.seq["name"] for g in segs}), "segments": len(segs)}
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
                "seconds": sum(int(s["n_frames"]) for s in avail) / self.frame_rate,
                "bytes": size}


def _list_key(train_on) -> str:
    """The authors' list of a training set: ``all`` or one scenario."""
    sc = sorted({int(x) for x in (train_on or (1, 2, 3))})
    if sc == [1, 2, 3]:
        return "all"
    if len(sc) == 1 and sc[0] in (1, 2, 3):
        return str(sc[0])
    raise AcamError(f"train_on={sc}: the block split has lists for one scenario or all three, not {sc}")


def _stable_hash(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def read_crop(crop: Crop, fields=("mfcc", "label")) -> dict:
    """The requested fields of one crop, read lazily from its file (only the crop's frames).

    Fields: ``mfcc`` (n, 36, 48, 12), ``cube`` (n, 36, 48, 512), ``mono`` and ``beam``
    (n * frame_len,), ``video`` (n, H, W, 3), ``source_track`` (n, 3), ``label`` (action index).
    """
    bad = [f for f in fields if f not in FIELDS]
    if bad:
        raise AcamError(f"unknown crop fields {bad}; choose from {', '.join(FIELDS)}")
    out = {}
    with open_h5(crop.file, "sequence file") as f:
        try:
            out = _read_crop(f, crop, fields, out)
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise FormatError(f"{crop.file}: cannot read crop ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    for name, arr in out.items():            # a NaN would train (and score) silently as garbage
        if isinstance(arr, np.ndarray) and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise FormatError(f"{crop.file}: '{name}' holds NaN or infinite values in frames {crop.start}.."
                              f"{crop.start + crop.n_frames - 1}")
    return out


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
            why = MISSING.get(name, "build with it, or ask for another field")
            raise FormatError(f"{crop.file}: no {name!r} dataset ({why})")
        d = dataset(f, name, crop.file)
        if name in ("mono", "beam"):
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
