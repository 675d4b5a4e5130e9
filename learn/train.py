"""One training loop for teachers, students and distillation.

Adam, mini-batches, best checkpoint by validation accuracy, resume from the last checkpoint after
an interruption (``epochs`` may be raised then), deterministic for a seed (crop positions fixed; the
epoch number seeds the shuffle; on CUDA :func:`deterministic_cuda` selects deterministic
cuDNN/cuBLAS algorithms, and an operation that has none warns instead of silently varying), CUDA
when present, a progress bar, a CSV log of loss and accuracy per epoch and a learning-curve PNG.

The authors' training details are the defaults (``TrainConfig``; see docs/RESULTS.md):

- frame-wise teachers (DualCamNet, ResNet-50, AVNet) learn and are validated per frame: the crop's
  label is copied to each of its 12 frames (``teacher_loss="frame"``; ``"clip"`` averages the
  frames' logits first);
- validation tiles each validation sequence with non-overlapping crops of the training length and
  scores teachers per frame, students per 5 s window; the later epoch wins a tie;
- L2 ``weight_decay`` 5e-4 (Adam's coupled decay, as TF's ``l2_regularizer`` adds it to the loss) on
  the weights each model's :meth:`decayed` names;
- input statistics (HearNet's per-frequency min/max) from the training set, kept in the model;
- with ``init`` weights, the video models freeze their ImageNet backbone (see :mod:`.models`).

A run folder holds ``config.json``, ``log.csv``, ``curve.png``, ``best.pt`` (the model with the best
validation accuracy) and, while the run is unfinished (or with ``keep="all"``), ``last.pt``
(everything needed to resume).  Checkpoints hold only plain values (tensors, numbers, strings,
lists, dicts; :mod:`.checkpoint` writes and checks them) and are read with
``torch.load(weights_only=True)``; they carry the model config, the training config and the input
statistics, so :func:`load_run` rebuilds the model from the file alone.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from acam.core.errors import AcamError, ParameterError
from acam.core.progress import progress_bar
from acam.core.safeio import atomic_output, write_text
from acam.dataset.store import Dataset

from .checkpoint import (check_fits_data, check_run, load_checkpoint, load_run, load_weights, save_checkpoint,
                         soft_labels)
from .checks import check_train_config
from .data import CropDataset, collate, input_stats
from .losses import distillation_loss
from .models import REGISTRY, STUDENTS, ModelConfig, block_logits, build_model, clip_logits
from .names import TAGS

#: Training reads its running loss and accuracy off the device for the progress line every this many batches.
PROGRESS_EVERY = 10

# the paper's crops: teachers 1 s x 30 per sequence, students 5 s x 6
CROPS = {"teacher": (1.0, 30), "student": (5.0, 6)}
PRETRAINABLE = ("resnet50", "temporal_resnet50", "avnet")     # --init freezes their ImageNet backbone
TEACHER_LOSSES = ("frame", "clip")
KEEP = ("best", "all")
_NOT_COMPARED = ("epochs", "device")                          # may change when a run is resumed
CONTROL_INPUTS = {"mfcc_mono": "mfcc", "spectrogram_beam": "spectrogram"}     # a control's input -> what it replaces


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run, built by keyword and never changed (``dataclasses.replace`` makes a
    variant).  ``inputs`` replaces the model's own input (a control: ``mfcc_mono``,
    ``spectrogram_beam``); ``split`` is the dataset's split method; ``init`` local weights;
    ``model_options`` extra model settings (e.g. ``{"standardise": True}`` for DualCamNet)."""

    model: str
    data: str
    train_on: list = field(default_factory=lambda: [1, 2, 3])
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    crop_seconds: float | None = None
    crops_per_sequence: int | None = None
    teacher: str | None = None          # run folder of the teacher (distillation)
    lam: float = 0.5
    temperature: float = 1.0
    weight_decay: float = 5e-4
    device: str = "auto"
    inputs: str | None = None
    teacher_loss: str = "frame"
    split: str = "stratified"
    init: str | None = None
    model_options: dict = field(default_factory=dict)

    def crops(self) -> tuple[float, int]:
        kind = "student" if self.model in STUDENTS else "teacher"
        sec, n = CROPS[kind]
        return (self.crop_seconds or sec, self.crops_per_sequence or n)

    def resolved(self) -> "TrainConfig":
        """The same run with the defaults it uses written out (crop length and count, paths)."""
        sec, n = self.crops()
        return replace(self, crop_seconds=float(sec), crops_per_sequence=int(n), data=os.path.abspath(self.data),
                       teacher=os.path.abspath(self.teacher) if self.teacher else None,
                       init=os.path.abspath(self.init) if self.init else None, train_on=sorted(self.train_on))

    def model_config(self) -> ModelConfig:
        """The run's architecture with every option written out (what its checkpoints store)."""
        opts = dict(self.model_options)
        if self.init and self.model in PRETRAINABLE:
            opts["pretrained"] = True
        return ModelConfig(self.model, options=opts).full()

    def check(self) -> None:
        if self.model not in REGISTRY:
            raise AcamError(f"model={self.model!r} is not one of {', '.join(REGISTRY)}")
        if self.teacher_loss not in TEACHER_LOSSES:
            raise AcamError(f"teacher_loss={self.teacher_loss!r} must be one of {', '.join(TEACHER_LOSSES)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise AcamError(f"{name}={getattr(self, name)} must be at least 1")
        own = REGISTRY[self.model].modality
        if self.inputs is not None and CONTROL_INPUTS.get(self.inputs) != own:
            fits = [k for k, v in CONTROL_INPUTS.items() if v == own]
            raise AcamError(f"inputs={self.inputs!r} does not fit {self.model!r} (it takes {own!r}"
                            f"{'; its control input is ' + fits[0] if fits else ''})")
        if not self.lr > 0 or self.weight_decay < 0:
            raise AcamError(f"lr={self.lr} must be positive and weight_decay={self.weight_decay} not negative")


def is_main_process() -> bool:
    """Whether this process reports for the run: always, except the ranks other than 0 of a
    ``torchrun`` job (they train their share and leave the writing and the summary to rank 0)."""
    return os.environ.get("RANK", "0") == "0"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AcamError("device='cuda' was asked for but PyTorch sees no CUDA GPU")
    if name not in ("cpu", "cuda"):
        raise AcamError(f"device={name!r} must be auto, cpu or cuda")
    return torch.device(name)


def _to(x, device):
    """To ``device``; from pinned batches the copy is asynchronous (no wait per step)."""
    if isinstance(x, tuple):
        return tuple(t.to(device, non_blocking=True) for t in x)
    return x.to(device, non_blocking=True)


def deterministic_cuda(device: torch.device) -> None:
    """Make a CUDA run repeat for a seed: deterministic cuDNN algorithms (no benchmark autotuning),
    a fixed cuBLAS workspace, and ``torch.use_deterministic_algorithms`` (an operation without a
    deterministic CUDA kernel warns, naming itself).  Nothing changes on the CPU, which is
    deterministic already."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # read when cuBLAS starts
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def process_group_timeout():
    """How long a process waits for the others in a collective under ``torchrun``: the
    ``ACAM_DIST_TIMEOUT`` environment variable in seconds, default 2 hours.  Rank 0 alone computes the
    teacher's soft labels and validates and saves each epoch while the others wait in a barrier;
    NCCL's own default (10 minutes) would abort such a job."""
    import datetime

    raw = os.environ.get("ACAM_DIST_TIMEOUT", "7200")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not (seconds > 0 and seconds < 1e9):
        raise AcamError(f"ACAM_DIST_TIMEOUT={raw!r} must be a positive number of seconds")
    return datetime.timedelta(seconds=seconds)


def make_datasets(cfg: TrainConfig, modality: str):
    """Training crops (fixed random positions) and validation windows (tiling each sequence)."""
    data = Dataset(cfg.data, cfg.split)
    sec, n = cfg.crops()
    train = CropDataset(data, modality, data.crops("train", sec, n, cfg.seed, cfg.train_on, cfg.train_on))
    val = CropDataset(data, modality, data.windows("val", sec, cfg.train_on, cfg.train_on))
    if len(train) == 0 or len(val) == 0:
        raise AcamError(f"{cfg.data}: no training or validation sequences for scenarios {cfg.train_on}")
    return data, train, val


def training_stats(model, data: Dataset, cfg: TrainConfig, modality: str) -> dict | None:
    """The model's input statistics over the training split's windows (the authors' inference-mode
    clips of ``training.txt``)."""
    kind = getattr(model, "stats_kind", None)
    if kind is None:
        return None
    sec, _ = cfg.crops()
    wins = CropDataset(data, modality, data.windows("train", sec, cfg.train_on, cfg.train_on), cache=False)
    return input_stats(kind, wins)


def frame_loss_applies(model, cfg: TrainConfig) -> bool:
    return getattr(model, "FRAMEWISE", False) and cfg.teacher_loss == "frame" and not cfg.teacher


def loss_and_hits(logits, y, soft, cfg: TrainConfig, per_frame: bool):
    """The training loss and (correct, counted) at the run's granularity."""
    if per_frame and logits.dim() == 3:
        t = logits.shape[1]
        flat, yy = logits.reshape(-1, logits.shape[-1]), y.repeat_interleave(t)
        return torch.nn.functional.cross_entropy(flat, yy), (flat.argmax(-1) == yy).sum(), len(yy)
    clip = clip_logits(logits)
    if soft is not None:
        loss = distillation_loss(clip, y, soft, cfg.lam, cfg.temperature)
    else:
        loss = torch.nn.functional.cross_entropy(clip, y)
    return loss, (clip.argmax(-1) == y).sum(), len(y)


@torch.no_grad()
def predict(model, loader, device, frames: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, labels and crop indices over a loader: per crop (frames averaged), or with
    ``frames`` the model's own output ((N, T, C) for frame-wise models)."""
    model.eval()
    out, ys, idx = [], [], []
    for x, y, i in loader:
        z = model(_to(x, device)).float().cpu()
        out.append(z if frames else clip_logits(z))
        ys.append(y)
        idx.append(i)
    return torch.cat(out).numpy(), torch.cat(ys).numpy(), torch.cat(idx).numpy()


@torch.no_grad()
def predict_blocks(model, loader, device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A teacher's logits per one-second block (:func:`block_logits`) over a loader of whole-second crops."""
    model.eval()
    out, ys, idx = [], [], []
    for x, y, i in loader:
        out.append(block_logits(model, _to(x, device)).float().cpu())
        ys.append(y)
        idx.append(i)
    return torch.cat(out).numpy(), torch.cat(ys).numpy(), torch.cat(idx).numpy()


def run_modality(ckpt: dict) -> str:
    """The input a run was trained on (its control's, else its model's)."""
    cfg = ckpt["train_config"]
    return cfg.get("inputs") or REGISTRY[cfg["model"]].modality


def teacher_soft_logits(teacher_dir: str, crops, data: Dataset, device, batch_size: int = 8,
                        n_classes: int | None = None) -> torch.Tensor:
    """The teacher's logits for each student crop: the teacher runs on the crop one second at a time
    and its logits are averaged over all the crop's frames (the authors' ``reduce_mean`` over 12 x 5),
    computed once and cached beside the teacher, keyed by the crops and the teacher's checkpoint
    (:func:`acam.learn.checkpoint.soft_labels`)."""
    def compute(indices=None):
        model, ckpt = load_run(teacher_dir, device)
        some = crops if indices is None else [crops[i] for i in indices]
        ds = CropDataset(data, run_modality(ckpt), some, cache=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=collate)
        logits, _, _ = predict_blocks(model, loader, device)
        return torch.from_numpy(logits.reshape(len(logits), -1, logits.shape[-1]).mean(1))

    return soft_labels(teacher_dir, crops, n_classes or ModelConfig("hearnet").n_classes, compute)


def supervision(cfg: TrainConfig) -> str:
    """``-`` for a teacher, ``G`` for a student on labels, the teacher's tag (``D``, ``R``...) when distilled."""
    if cfg.model not in STUDENTS:
        return "-"
    if not cfg.teacher:
        return "G"
    best = os.path.join(cfg.teacher, "best.pt")
    if not os.path.lexists(best):
        raise AcamError(f"teacher {cfg.teacher!r} has no best.pt checkpoint (is it a training run folder?)")
    return TAGS.get(check_run(load_checkpoint(best), best)["train_config"]["model"], "?")


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in _NOT_COMPARED}


def _finished(out_dir: str, cfg: TrainConfig) -> dict | None:
    """A run that finished and kept only ``best.pt``: its summary, or None when there is none."""
    best, log = os.path.join(out_dir, "best.pt"), os.path.join(out_dir, "log.csv")
    if not (os.path.isfile(best) and os.path.isfile(log)):
        return None
    ck = check_run(load_checkpoint(best), best)
    if _comparable(ck["train_config"]) != _comparable(json.loads(json.dumps(asdict(cfg)))):
        raise AcamError(f"{out_dir!r} holds a run with other settings; choose another folder")
    try:
        with open(log, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        best_val = max(float(r["val_acc"]) for r in rows)
    except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError, csv.Error):
        raise AcamError(f"{log}: not a training log (finished run without last.pt); train in a new folder") from None
    if len(rows) < cfg.epochs:
        raise AcamError(f"{out_dir!r} finished after {len(rows)} epochs and kept only best.pt; training it "
                        f"to {cfg.epochs} epochs needs its last.pt (keep='all'): train it again in a new folder")
    return {"best_val_acc": best_val, "epochs": len(rows), "out_dir": out_dir}


def check_run_folder(out_dir: str, data: str | None = None, teacher: str | None = None) -> None:
    """Refuse a run folder that is (or lies inside) the dataset or the teacher run it reads, or that
    holds a dataset: a run's files never go into a dataset folder."""
    from acam.core.safeio import check_output_folder, folder_kind

    check_output_folder(out_dir, "run folder", [(data, "dataset folder"), (teacher, "teacher run folder")])
    if os.path.isdir(out_dir) and folder_kind(out_dir) == "dataset":
        raise AcamError(f"run folder {out_dir!r} holds a dataset (manifest.json or sequences/); "
                        "give a folder of its own for the run")


def fit(cfg: TrainConfig, out_dir: str, progress: bool = False, init: str | None = None,
        resume: bool = True, threads: int | None = None, keep: str = "best") -> dict:
    """Train ``cfg.model`` (with distillation from ``cfg.teacher`` when given); returns a summary.

    ``init``: local weights (also ``cfg.init``); ``threads``: PyTorch's CPU threads (a task's share
    of a machine), else left as they are; ``keep``: ``best`` removes ``last.pt`` once the run is
    finished, ``all`` keeps it (so ``epochs`` can be raised later)."""
    if keep not in KEEP:
        raise AcamError(f"keep={keep!r} must be one of {', '.join(KEEP)}")
    check_train_config(cfg)
    cfg = replace(cfg, init=init or cfg.init).resolved()
    cfg.check()
    check_run_folder(out_dir, cfg.data, cfg.teacher)
    if threads is not None:
        torch.set_num_threads(threads)
    last = os.path.join(out_dir, "last.pt")
    if resume and not os.path.isfile(last):
        done = _finished(out_dir, cfg)
        if done is not None:
            return done
    made = not os.path.lexists(out_dir)
    try:
        return _train(cfg, out_dir, progress, resume, keep)
    except BaseException:
        if made:
            _remove_empty_run(out_dir)
        raise


def _remove_empty_run(out_dir: str) -> None:
    """After a failure before any checkpoint, remove the run folder this call made (its config)."""
    import contextlib

    with contextlib.suppress(OSError):
        if any(os.path.lexists(os.path.join(out_dir, n)) for n in ("best.pt", "last.pt", "log.csv")):
            return
        cfg_file = os.path.join(out_dir, "config.json")
        if os.path.isfile(cfg_file):
            os.unlink(cfg_file)
        os.rmdir(out_dir)
def make_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the trainable parameters; L2 ``weight_decay`` only on those :meth:`decayed` names."""
    names = set(model.decayed())
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in params if n in names], "weight_decay": cfg.weight_decay},
              {"params": [p for n, p in params if n not in names], "weight_decay": 0.0}]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.lr)


def _setup(cfg: TrainConfig, device, resuming: bool):
    """Model (with init weights and training statistics), data and the teacher's soft labels."""
    model = build_model(cfg.model_config())
    if cfg.init:
        _load_init(model, cfg.init)
    modality = cfg.inputs or model.modality
    data, train, val = make_datasets(cfg, modality)
    if modality in ("mfcc", "av"):
        check_fits_data(model, cfg.model_config().as_dict(), data, cfg.data)
    stats = None if resuming else training_stats(model, data, cfg, modality)
    if stats:
        model.set_stats(stats)
    return model.to(device), modality, data, train, val, stats


@torch.no_grad()
def validate(model, loader, device, per_frame: bool) -> tuple[float, float]:
    """Cross-entropy and accuracy on the validation windows (per frame for frame-wise teachers)."""
    logits, y, _ = predict(model, loader, device, frames=per_frame)
    z = torch.from_numpy(logits)
    yy = torch.from_numpy(y)
    if z.dim() == 3:
        yy = yy.repeat_interleave(z.shape[1])
        z = z.reshape(-1, z.shape[-1])
    return float(torch.nn.functional.cross_entropy(z, yy)), float((z.argmax(-1) == yy).float().mean())


def train_epoch(net, loader, opt, soft, cfg: TrainConfig, per_frame: bool, device, bar=None,
                show: bool = False, n_batches: int = 0) -> tuple[float, int, int]:
    """One pass over the training crops: summed loss, correct and counted (crops or frames).  The
    running sums stay on the device: the host reads them only for the progress line (every
    ``PROGRESS_EVERY`` batches) and at the end of the epoch, not after every step."""
    total = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n, step = 0, 0
    for x, y, idx in loader:
        x, y = _to(x, device), _to(y, device)
        loss, hits, count = loss_and_hits(net(x), y, None if soft is None else soft[_to(idx, device)], cfg,
                                          per_frame)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.detach().double() * count
        correct += hits
        n += count
        step += 1
        if bar is not None:
            if show and (step == 1 or step % PROGRESS_EVERY == 0 or step == n_batches):   # this epoch so far
                bar.set_postfix(loss=f"{float(total) / n:.3f}", acc=f"{int(correct) / n:.3f}", refresh=False)
            bar.update(1)
    return float(total), int(correct), n


def _resume_state(out_dir: str, cfg: TrainConfig, resume: bool) -> dict | None:
    """``last.pt`` of an interrupted run of these settings (the epochs may have been raised), or None."""
    last = os.path.join(out_dir, "last.pt")
    if not (resume and os.path.isfile(last)):
        return None
    ck = check_run(load_checkpoint(last), last, resume=True)
    if _comparable(ck["train_config"]) != _comparable(json.loads(json.dumps(asdict(cfg)))):
        raise AcamError(f"{out_dir!r} holds a run with other settings; choose another folder")
    return ck


def _soft(cfg: TrainConfig, train, data, device, dist):
    """The teacher's soft labels of the training crops (rank 0 fills the cache, the others read it)."""
    if not cfg.teacher:
        return None
    if cfg.model not in STUDENTS:
        raise AcamError(f"distillation trains a student ({', '.join(STUDENTS)}), not {cfg.model!r}")
    if dist and dist.rank != 0:
        dist.barrier()
    soft = teacher_soft_logits(cfg.teacher, train.crops, data, device,
                               n_classes=cfg.model_config().n_classes).to(device)
    if dist and dist.rank == 0:
        dist.barrier()
    return soft


def _train(cfg: TrainConfig, out_dir: str, progress: bool, resume: bool, keep: str) -> dict:
    dist = Distributed.from_env(cfg.device)
    device = dist.device if dist else pick_device(cfg.device)
    deterministic_cuda(device)
    pin = device.type == "cuda"
    per_rank_batch = _per_rank_batch(cfg, dist)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    ck = _resume_state(out_dir, cfg, resume)
    model, modality, data, train, val, stats = _setup(cfg, device, ck is not None)
    sup = supervision(cfg)
    soft = _soft(cfg, train, data, device, dist)
    os.makedirs(out_dir, exist_ok=True)           # only once the inputs have been checked
    per_frame = frame_loss_applies(model, cfg)
    net = dist.wrap(model) if dist else model     # what trains; ``model`` is what is saved
    opt = make_optimizer(model, cfg)
    start_epoch, best_acc, history, stats = _restore(ck, model, opt, stats)
    main = dist is None or dist.rank == 0
    if main:
        write_text(os.path.join(out_dir, "config.json"), json.dumps(asdict(cfg), indent=1))
    val_loader = torch.utils.data.DataLoader(val, batch_size=cfg.batch_size, collate_fn=collate, pin_memory=pin)
    world = dist.world if dist else 1
    n_batches = -(-(-(-len(train) // world)) // per_rank_batch)            # per epoch and process
    label = "/".join(os.path.normpath(out_dir).split(os.sep)[-2:])
    show = progress and main
    bar = progress_bar(cfg.epochs * n_batches, show, label, "batch", start_epoch * n_batches, leave=False)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        net.train()
        sampler = EpochShuffle(len(train), epoch, dist.rank if dist else 0, world)
        loader = torch.utils.data.DataLoader(train, batch_size=per_rank_batch, sampler=sampler,
                                             collate_fn=collate, generator=torch.Generator(), pin_memory=pin)
        bar.set_description(f"{label} epoch {epoch + 1}/{cfg.epochs}", refresh=False)
        total, correct, n = train_epoch(net, loader, opt, soft, cfg, per_frame, device, bar, show, n_batches)
        if dist:
            total, correct, n = dist.sum(total, correct, n)
        if not main:                       # rank 0 validates and writes; the others wait for it
            dist.barrier()
            continue
        val_loss, val_acc = validate(model, val_loader, device, per_frame)
        row = {"epoch": epoch, "loss": total / n, "train_acc": correct / n, "val_loss": val_loss,
               "val_acc": val_acc, "seconds": time.perf_counter() - t0}
        history.append(row)
        state = _run_state(cfg, model, stats, modality, sup, train.ctx["fs"], epoch, history, val_acc)
        if val_acc >= best_acc:            # the later epoch wins a tie, as the authors' ">="
            best_acc = val_acc
            _save(state, os.path.join(out_dir, "best.pt"))
        _save({**state, "optimizer": opt.state_dict(), "best_acc": best_acc}, os.path.join(out_dir, "last.pt"))
        _write_log(out_dir, history)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['train_acc']:.3f}", val_acc=f"{val_acc:.3f}",
                        refresh=False)
        if dist:
            dist.barrier()
    bar.close()
    if main:
        _finish(out_dir, cfg, history, sup, keep)
    if dist:
        best_acc = dist.broadcast(best_acc)
        dist.close()
    return {"best_val_acc": best_acc, "epochs": cfg.epochs, "out_dir": out_dir}


def _per_rank_batch(cfg: TrainConfig, dist) -> int:
    """Each process's share of the global batch (the whole batch without DDP)."""
    if not dist:
        return cfg.batch_size
    if cfg.batch_size % dist.world:
        raise ParameterError("batch_size", cfg.batch_size,
                             f"(the global batch) must be a multiple of the {dist.world} processes")
    return cfg.batch_size // dist.world


def _restore(ck: dict | None, model, opt, stats):
    """``(start_epoch, best_acc, history, input_stats)``: a fresh start, or the interrupted run's
    state loaded into ``model`` and ``opt``."""
    if ck is None:
        return 0, -1.0, [], stats
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    return ck["epoch"] + 1, ck["best_acc"], ck["history"], ck.get("input_stats") or None


def _run_state(cfg: TrainConfig, model, stats, modality: str, sup: str, fs, epoch: int, history: list,
               val_acc: float) -> dict:
    """What a checkpoint holds (tensors, numbers, strings, lists and dicts only: weights_only loads it)."""
    return {"format": "acam-run", "model_config": cfg.model_config().as_dict(), "model": model.state_dict(),
            "train_config": asdict(cfg), "input_stats": stats or {}, "modality": modality,
            "supervision": sup, "sample_freq": fs, "epoch": epoch, "history": history, "val_acc": val_acc}


def _finish(out_dir: str, cfg: TrainConfig, history: list, sup: str, keep: str) -> None:
    """The learning curve, and ``last.pt`` removed once the run is done (``keep="best"``)."""
    from .figures import learning_curve

    if history:
        learning_curve(history, os.path.join(out_dir, "curve.png"), cfg, sup)
    if keep == "best" and history and history[-1]["epoch"] + 1 >= cfg.epochs:
        last = os.path.join(out_dir, "last.pt")
        if os.path.isfile(last):
            os.remove(last)


class EpochShuffle(torch.utils.data.Sampler):
    """The epoch's shuffle (the epoch number seeds it), dealt out to ``world`` processes.

    Process ``rank`` takes positions ``rank, rank + world, ...`` of the permutation, so with a
    per-process batch of ``B / world`` the union of the processes' i-th batches is the i-th batch
    of ``B`` of a single process.  Like ``DistributedSampler``, the permutation is padded from its
    start to a multiple of ``world``.  (One number is drawn before the permutation, as a shuffling
    ``DataLoader`` does, so single-process runs keep the order of earlier releases.)
    """

    def __init__(self, n: int, epoch: int, rank: int = 0, world: int = 1):
        g = torch.Generator().manual_seed(epoch)
        torch.empty((), dtype=torch.int64).random_(generator=g)
        perm = torch.randperm(n, generator=g).tolist()
        total = -(-n // world) * world
        perm += perm[: total - n]
        self.indices = perm[rank:total:world]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class Distributed:
    """One process of a ``torchrun`` job: DistributedDataParallel over NCCL (GPUs) or gloo (CPUs).

    The global batch is ``batch_size``, dealt out evenly to the processes by
    :class:`EpochShuffle` with the single-process shuffle, so each optimiser step sees the same
    samples as a single-process run and the result equals it within floating-point summation order
    (exactly so for models without batch norm; with batch norm, GPUs synchronise its statistics,
    CPUs normalise per process).  Rank 0 alone validates and writes checkpoints and logs.
    """

    def __init__(self, rank: int, world: int, local_rank: int, device: torch.device):
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device

    @classmethod
    def from_env(cls, device_name: str) -> "Distributed | None":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        import torch.distributed as td

        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        device = pick_device(device_name)
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not td.is_initialized():
            td.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=process_group_timeout())
        return cls(rank, world, local, device)

    def wrap(self, model):
        from torch.nn.parallel import DistributedDataParallel

        if self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return DistributedDataParallel(model, device_ids=[self.device.index])
        return DistributedDataParallel(model)

    def barrier(self):
        import torch.distributed as td

        if self.device.type == "cuda":
            td.barrier(device_ids=[self.device.index])
        else:
            td.barrier()

    def sum(self, *values):
        import torch.distributed as td

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        td.all_reduce(t)
        return tuple(t.tolist())

    def broadcast(self, value: float) -> float:
        import torch.distributed as td

        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        td.broadcast(t, 0)
        return float(t.item())

    def close(self):
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()


def _save(obj, path):
    save_checkpoint(obj, path)


def _write_log(out_dir, history):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]))
    w.writeheader()
    w.writerows(history)
    write_text(os.path.join(out_dir, "log.csv"), buf.getvalue())


def _load_init(model, path):
    """Load a local state dict (e.g. torchvision's ImageNet ResNet-50, SoundNet conv weights) where
    names and shapes match; the classifier is left as it is.  AVNet takes a ResNet-50 state dict
    into its video branch."""
    if not os.path.isfile(path):
        raise AcamError(f"init weights {path!r} do not exist")
    state = load_weights(path)
    if hasattr(model, "video") and not any(k.startswith("video.") for k in state):
        state = {"video." + k: v for k, v in state.items()}
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise AcamError(f"{path!r}: no parameter matches this model's names and shapes")
    own.update(usable)
    model.load_state_dict(own)


def grid_search(cfg: TrainConfig, out_dir: str, progress: bool = False, lrs=(1e-3, 1e-4),
                temperatures=(1.0, 2.0, 5.0), lams=(0.25, 0.5, 0.75), scheduler: str | None = None,
                workers: int | None = None, retries: int = 2, echo=None) -> dict:
    """Distillation hyper-parameters by validation accuracy: one run per combination under
    ``out_dir/grid/``, a ``grid.csv`` table, and the best run copied to ``out_dir``.

    Each combination is a task of :func:`acam.core.tasks.run_tasks` (``scheduler``/``workers``
    spread them over a Dask cluster); the teacher's soft labels are cached before they start."""
    import shutil

    from acam.core.tasks import Task, fans_out, local_threads, run_tasks

    check_run_folder(out_dir, cfg.data, cfg.teacher)
    fanned = fans_out(scheduler, workers)
    threads = local_threads(workers, scheduler) if fanned else None
    if cfg.teacher:   # fill the soft-label cache once, not once per task
        data, train, _ = make_datasets(cfg, cfg.inputs or REGISTRY[cfg.model].modality)
        teacher_soft_logits(cfg.teacher, train.crops, data, pick_device(cfg.device))
    tasks = []
    for lr in lrs:
        for t in temperatures:
            for lam in lams:
                run = os.path.join(out_dir, "grid", f"lr{lr:g}_T{t:g}_l{lam:g}")
                c = replace(cfg, lr=lr, temperature=t, lam=lam)
                tasks.append(Task(os.path.basename(run), _grid_task, (c, run, progress and not fanned, threads)))
    rep = run_tasks(tasks, scheduler, workers, retries, progress and fanned, "grid", echo)
    if echo is not None and fanned:
        echo(rep.summary(tasks))
    rep.raise_failures("grid run(s)", len(tasks))
    rows = [rep.results[t.name] for t in tasks]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_text(os.path.join(out_dir, "grid.csv"), buf.getvalue())
    best = max(rows, key=lambda r: r["best_val_acc"])
    for name in ("best.pt", "last.pt", "log.csv", "config.json", "curve.png"):
        if os.path.isfile(os.path.join(best["run"], name)):
            with atomic_output(os.path.join(out_dir, name)) as tmp:
                shutil.copyfile(os.path.join(best["run"], name), tmp)
    return {**best, "best_val_acc": best["best_val_acc"], "epochs": cfg.epochs}


def _grid_task(cfg: TrainConfig, run: str, progress: bool, threads: int | None) -> dict:
    res = fit(cfg, run, progress, threads=threads)
    return {"lr": cfg.lr, "temperature": cfg.temperature, "lam": cfg.lam, "best_val_acc": res["best_val_acc"],
            "run": run}
