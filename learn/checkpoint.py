"""Checkpoints and the teacher's soft-label cache: written atomically, read without running code.

A checkpoint holds plain data only - tensors, numbers, strings, booleans, None, lists and dicts
(configs as plain dicts, the MFCC statistics as lists of floats; no NumPy values, no custom
classes) - so it loads with ``torch.load(weights_only=True)``, which refuses anything else: a
pickled payload in a run folder never runs.  A file that is not such a checkpoint (junk, truncated,
a payload, wrong keys, weights of another class count) is refused in one :class:`AcamError` line.

A run checkpoint (``best.pt``, ``last.pt``) is a dict with

| key | content |
|---|---|
| ``model_config`` | ``{"name", "n_classes", "options"}`` (:class:`~acam.learn.models.ModelConfig`) |
| ``model`` | the state dict |
| ``train_config`` | :class:`~acam.learn.train.TrainConfig` as a dict |
| ``mfcc_stats`` | ``[mean, std]``, 12 floats each, or None (checkpoints before the protocol of issue 13; newer ones keep their input statistics in the model's buffers) |
| ``input_stats`` | the training-set statistics the model normalises with, as lists (HearNet: per-frequency ``min``/``max``), for the reader |
| ``modality``, ``supervision``, ``sample_freq`` | the input the run was trained on (a control's, else the model's), ``-``/``G``/``D``/``R``..., the recordings' rate |
| ``epoch``, ``history``, ``val_acc`` | progress; ``last.pt`` adds ``optimizer`` and ``best_acc`` |

Writes go through :func:`acam.core.safeio.atomic_output`: a full disk leaves neither a damaged
checkpoint nor a ``.part`` file behind.

The soft-label cache (``soft_<key>.pt`` beside the teacher) is keyed by the student's crops *and*
the digest of the teacher's ``best.pt``, so a retrained teacher never serves stale labels.  A
teacher folder that cannot be written to gets its labels computed in memory (and says so).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys

import numpy as np
import torch

from acam.core.errors import AcamError
from acam.core.safeio import atomic_output, input_file

from .models import REGISTRY, ModelConfig, build_model

MAX_CLASSES = 10_000
MAX_OPTION = 4096           # the largest size a model option (height, width, n_freq...) may take


def plain(obj, where: str = "checkpoint"):
    """``obj`` as plain data (tensors, numbers, strings, bools, None, lists, dicts): NumPy arrays
    become lists, NumPy scalars Python numbers, tuples lists, dataclasses dicts."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj), where)
    if isinstance(obj, dict):
        return {k if isinstance(k, (str, int)) else str(k): plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise AcamError(f"{where}: a {type(obj).__name__} cannot be stored in a checkpoint")


def save_checkpoint(obj: dict, path: str) -> None:
    """Write ``obj`` (made plain) to ``path`` atomically."""
    data = plain(obj)
    with atomic_output(path) as tmp:
        torch.save(data, tmp)


def load_plain(path: str, what: str = "checkpoint", register: bool = True):
    """Plain data (see the module docs) from ``path``, loaded with ``weights_only=True``; anything
    else is refused in one line naming the file.  ``register=False``: a file the command may replace
    (a cache), not counted as an input."""
    input_file(path, what, register)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure of a crafted file is one line
        raise AcamError(f"{path}: not a {what} acam can load ({_reason(exc)})") from None


def load_checkpoint(path: str, what: str = "checkpoint") -> dict:
    """Like :func:`load_plain`, for a dict (every checkpoint is one)."""
    obj = load_plain(path, what)
    if not isinstance(obj, dict):
        raise AcamError(f"{path}: not a {what} acam can load (holds a {type(obj).__name__}, not a dict)")
    return obj


def _reason(exc: Exception) -> str:
    import pickle

    text = " ".join(str(exc).split())
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text or "Unsupported global" in text:
        return "it holds objects other than tensors, numbers, strings, lists and dicts; refused unread"
    if "zip archive" in text or "central directory" in text or isinstance(exc, EOFError):
        return "truncated or not a PyTorch file"
    return text[:200] or type(exc).__name__


# --------------------------------------------------------------------------------- run checkpoints
_RUN_KEYS = {"model_config": dict, "model": dict, "train_config": dict, "epoch": int, "history": list}
_RESUME_KEYS = {"optimizer": dict, "best_acc": (int, float)}


def check_run(ck: dict, path: str, resume: bool = False) -> dict:
    """Refuse a checkpoint without the keys and types of a run (see the module docs)."""
    for key, kind in {**_RUN_KEYS, **(_RESUME_KEYS if resume else {})}.items():
        if not isinstance(ck.get(key), kind) or isinstance(ck.get(key), bool):
            raise AcamError(f"{path}: not a training checkpoint ({key!r} missing or of the wrong type)")
    mc = ck["model_config"]
    if mc.get("name") not in REGISTRY:
        raise AcamError(f"{path}: model {mc.get('name')!r} is not one of {', '.join(REGISTRY)}")
    n = mc.get("n_classes")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CLASSES:
        raise AcamError(f"{path}: n_classes={n!r} is not a class count")
    opts = mc.get("options", {})
    if not isinstance(opts, dict) or not all(_small_option(v) for v in opts.values()):
        raise AcamError(f"{path}: model options {opts!r} are not small whole numbers or flags")
    if set(mc) - {"name", "n_classes", "options"}:
        raise AcamError(f"{path}: unknown model_config keys {sorted(set(mc) - {'name', 'n_classes', 'options'})}")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ck["model"].items()):
        raise AcamError(f"{path}: 'model' is not a state dict of tensors")
    tc = ck["train_config"]
    if not isinstance(tc.get("model"), str) or not isinstance(tc.get("data"), str):
        raise AcamError(f"{path}: train_config lacks 'model' or 'data'")
    stats = ck.get("mfcc_stats")
    if stats is not None and not _is_stats(stats):
        raise AcamError(f"{path}: mfcc_stats is not [mean, std] of 12 finite numbers each")
    return ck


def _small_option(v) -> bool:
    return (isinstance(v, bool) or (isinstance(v, int) and 1 <= v <= MAX_OPTION)
            or (isinstance(v, float) and 0 < v <= 1))           # a fraction: batch-norm momentum


def _is_stats(stats) -> bool:
    if not isinstance(stats, (list, tuple)) or len(stats) != 2:
        return False
    arrs = [np.asarray(s.tolist() if isinstance(s, torch.Tensor) else s) for s in stats]
    return all(a.shape == (12,) and a.dtype.kind in "iuf" and np.all(np.isfinite(a)) for a in arrs) \
        and bool(np.all(arrs[1] > 0))


def stats_array(ck: dict):
    """The checkpoint's MFCC statistics as two float32 arrays (or None)."""
    s = ck.get("mfcc_stats")
    if s is None:
        return None
    return tuple(np.asarray(x.tolist() if isinstance(x, torch.Tensor) else x, np.float32) for x in s)


def build_from(ck: dict, path: str, device=torch.device("cpu")):
    """The model a checked checkpoint describes, with its weights loaded."""
    mc = ck["model_config"]
    try:
        model = build_model(ModelConfig(**mc))
        model.load_state_dict(ck["model"])
    except (RuntimeError, TypeError, ValueError) as exc:
        raise AcamError(f"{path}: the weights do not fit a {mc['name']} with {mc['n_classes']} classes "
                        f"({' '.join(str(exc).split())[:160]})") from None
    return model.to(device).eval()


def load_run(run_dir: str, device=torch.device("cpu"), which: str = "best"):
    """Rebuild the model of a run folder from its checkpoint alone: ``(model, checkpoint)`` with the
    checkpoint's ``mfcc_stats`` as arrays."""
    path = os.path.join(os.fspath(run_dir), f"{which}.pt")
    if not os.path.lexists(path):
        from acam.core.safeio import folder_kind

        if os.path.isdir(run_dir) and folder_kind(run_dir) == "dataset":
            raise AcamError(f"{run_dir!r} is a dataset folder, not a training run folder (no {which}.pt)")
        raise AcamError(f"{run_dir!r} has no {which}.pt checkpoint (is it a training run folder?)")
    ck = check_run(load_checkpoint(path), path)
    model = build_from(ck, path, device)
    ck["mfcc_stats"] = stats_array(ck)
    return model, ck


def load_resume(path: str, train_config: dict) -> dict:
    """``last.pt`` of an interrupted run, checked to be a run of ``train_config``."""
    ck = check_run(load_checkpoint(path), path, resume=True)
    if ck["train_config"] != json.loads(json.dumps(plain(train_config))):
        raise AcamError(f"{os.path.dirname(path)!r} holds a run with other settings; choose another folder")
    ck["mfcc_stats"] = stats_array(ck)
    return ck


def load_weights(path: str) -> dict:
    """A state dict (or a checkpoint's ``model``) of tensors, for ``--init``."""
    state = load_checkpoint(path, "weights file")
    if isinstance(state.get("model"), dict):
        state = state["model"]
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise AcamError(f"{path}: not a state dict of tensors")
    return state


# ---------------------------------------------------------------------------------- data fit checks
MFCC_MODALITIES = ("mfcc", "av")


def check_fits_data(model, model_config: dict, data, where: str) -> None:
    """Refuse a dataset whose MFCC frames are not the grid the model was built for (another
    ``rows x cols x coefficients``) before any batch reaches the network."""
    if getattr(model, "modality", None) not in MFCC_MODALITIES:
        return
    from acam.core.h5read import dataset
    from acam.core.safeio import open_h5

    opts = model_config.get("options", {})
    want = (opts.get("height", 36), opts.get("width", 48), opts.get("depth", 12))
    for seq in data.available()[:1]:
        path = data.path(seq)
        with open_h5(path, "sequence file") as f:
            got = tuple(dataset(f, "mfcc", path, ndim=4).shape[1:])
        if got != want:
            raise AcamError(f"{where}: MFCC frames of {path} are {'x'.join(map(str, got))}; the "
                            f"{model_config['name']} model takes {'x'.join(map(str, want))}")


# ---------------------------------------------------------------------------------- soft-label cache
def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(input_file(path, "teacher checkpoint"), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def soft_labels(teacher_dir: str, crops, n_classes: int, compute, note=None) -> torch.Tensor:
    """The teacher's logits for ``crops`` [shape=(n_crops, n_classes)]: from the cache beside the
    teacher when it holds them for these crops and this very ``best.pt``, else ``compute()`` (then
    cached; in memory only when the teacher folder cannot be written, said through ``note``).

    ``compute(indices=None)`` gives the logits of all crops, or of the crops at ``indices``: a cache
    is only used when its values for a few crops match the teacher's, else it is replaced."""
    note = note or (lambda text: print(text, file=sys.stderr))
    best = os.path.join(teacher_dir, "best.pt")
    key = hashlib.sha256(json.dumps([file_digest(best)] + [(c.sequence, c.start, c.n_frames) for c in crops])
                         .encode()).hexdigest()[:16]
    cache = os.path.join(teacher_dir, f"soft_{key}.pt")
    if os.path.lexists(cache):
        try:          # never trusted: checked for type, shape, finiteness and against the teacher itself
            t = load_plain(cache, "soft-label cache", register=False)
            if not _fits(t, len(crops), n_classes):
                raise AcamError(f"{cache}: not the teacher's logits for these crops (type, shape or values)")
            sel = sorted({0, len(crops) // 3, 2 * len(crops) // 3, len(crops) - 1})
            if not torch.allclose(t[sel].float(), compute(sel).float(), rtol=1e-3, atol=1e-4):
                raise AcamError(f"{cache}: its logits differ from the teacher's own for the same crops")
            return t
        except AcamError as exc:
            note(f"note: ignoring the soft-label cache {exc}; recomputing it")
    t = compute()
    if not _fits(t, len(crops), n_classes):
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise AcamError(f"teacher {teacher_dir!r} gives logits of shape {shape}; the student needs "
                        f"({len(crops)}, {n_classes}): a teacher of another class count?")
    try:
        with atomic_output(cache) as tmp:
            torch.save(t, tmp)
    except (AcamError, OSError) as exc:
        note(f"note: soft labels computed in memory, not cached ({exc})")
    return t


def _fits(t, n: int, c: int) -> bool:
    return (isinstance(t, torch.Tensor) and t.dtype.is_floating_point and tuple(t.shape) == (n, c)
            and bool(torch.isfinite(t).all()))


__all__ = ["plain", "save_checkpoint", "load_checkpoint", "check_run", "load_run", "load_resume", "load_weights",
           "check_fits_data", "soft_labels", "stats_array"]
