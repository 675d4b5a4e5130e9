"""One training loop for teachers, students and distillation.

Adam, mini-batches, best checkpoint by validation accuracy, resume from the last checkpoint after
an interruption, deterministic for a seed (crop positions fixed; the epoch number seeds the
shuffle; on CUDA :func:`deterministic_cuda` selects deterministic cuDNN/cuBLAS algorithms, and an
operation that has none warns instead of silently varying), CUDA when present, a progress bar and a
CSV log of loss and accuracy per epoch.

A run folder holds ``config.json``, ``log.csv``, ``last.pt`` (everything needed to resume) and
``best.pt`` (the model with the best validation accuracy).  Checkpoints carry the model config, the
data settings and the MFCC statistics, so :func:`load_run` rebuilds the model from the file alone.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from acam.core.errors import AcamError
from acam.core.progress import progress_bar
from acam.dataset.store import Dataset

from .data import CropDataset, collate, mfcc_stats
from .losses import distillation_loss
from .models import STUDENTS, ModelConfig, build_model, clip_logits

#: Training reads its running loss and accuracy off the device for the progress line every this many batches.
PROGRESS_EVERY = 10

# the paper's crops: teachers 1 s x 30 per sequence, students 5 s x 6
CROPS = {"teacher": (1.0, 30), "student": (5.0, 6)}


@dataclass
class TrainConfig:
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
    weight_decay: float = 0.0
    device: str = "auto"

    def crops(self) -> tuple[float, int]:
        kind = "student" if self.model in STUDENTS else "teacher"
        sec, n = CROPS[kind]
        return (self.crop_seconds or sec, self.crops_per_sequence or n)


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


def make_datasets(cfg: TrainConfig, modality: str, stats=None):
    data = Dataset(cfg.data)
    sec, n = cfg.crops()
    if modality in ("mfcc", "av") and stats is None:
        stats = mfcc_stats(data, "train", cfg.train_on)
    train = CropDataset(data, modality, data.crops("train", sec, n, cfg.seed, cfg.train_on), stats)
    val = CropDataset(data, modality, data.crops("val", sec, max(1, n // 3), cfg.seed + 1, cfg.train_on), stats)
    if len(train) == 0 or len(val) == 0:
        raise AcamError(f"{cfg.data}: no training or validation sequences for scenarios {cfg.train_on}")
    return data, train, val, stats


@torch.no_grad()
def predict(model, loader, device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip logits, labels and crop indices over a loader."""
    model.eval()
    out, ys, idx = [], [], []
    for x, y, i in loader:
        out.append(clip_logits(model(_to(x, device))).float().cpu())
        ys.append(y)
        idx.append(i)
    return torch.cat(out).numpy(), torch.cat(ys).numpy(), torch.cat(idx).numpy()


def teacher_soft_logits(teacher_dir: str, crops, data: Dataset, device, batch_size: int = 8) -> torch.Tensor:
    """The teacher's logits for each student crop, averaged over all its frames (12 per second), computed
    once and cached on disk beside the teacher (crops are deterministic, so the cache stays valid)."""
    import hashlib

    key = hashlib.sha256(json.dumps([(c.sequence, c.start, c.n_frames) for c in crops]).encode()).hexdigest()[:16]
    cache = os.path.join(teacher_dir, f"soft_{key}.pt")
    if os.path.isfile(cache):
        return torch.load(cache)
    model, ckpt = load_run(teacher_dir, device)
    modality = model.modality
    ds = CropDataset(data, modality, crops, ckpt.get("mfcc_stats"), cache=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=collate)
    logits, _, _ = predict(model, loader, device)
    t = torch.from_numpy(logits)
    torch.save(t, cache + ".part")
    os.replace(cache + ".part", cache)
    return t


def load_run(run_dir: str, device=torch.device("cpu"), which: str = "best"):
    """Rebuild the model of a run folder from its checkpoint alone."""
    path = os.path.join(run_dir, f"{which}.pt")
    if not os.path.isfile(path):
        raise AcamError(f"{run_dir!r} has no {which}.pt checkpoint (is it a training run folder?)")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    model = build_model(ModelConfig(**ckpt["model_config"])).to(device)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def fit(cfg: TrainConfig, out_dir: str, progress: bool = False, init: str | None = None,
        resume: bool = True, threads: int | None = None) -> dict:
    """Train ``cfg.model`` (with distillation from ``cfg.teacher`` when given); returns a summary.
    ``threads``: PyTorch's CPU threads (a task's share of a machine), else left as they are."""
    if threads is not None:
        torch.set_num_threads(threads)
    dist = Distributed.from_env(cfg.device)
    device = dist.device if dist else pick_device(cfg.device)
    deterministic_cuda(device)
    pin = device.type == "cuda"
    per_rank_batch = cfg.batch_size
    if dist:
        if cfg.batch_size % dist.world:
            raise AcamError(f"--batch-size {cfg.batch_size} (the global batch) must be a multiple of the "
                            f"{dist.world} processes")
        per_rank_batch = cfg.batch_size // dist.world
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    os.makedirs(out_dir, exist_ok=True)
    model = build_model(ModelConfig(cfg.model)).to(device)
    if init:
        _load_init(model, init)
    data, train, val, stats = make_datasets(cfg, model.modality)
    soft = None
    if cfg.teacher:
        if cfg.model not in STUDENTS:
            raise AcamError(f"distillation trains a student ({', '.join(STUDENTS)}), not {cfg.model!r}")
        if dist and dist.rank != 0:
            dist.barrier()                   # rank 0 fills the soft-label cache, the others read it
        soft = teacher_soft_logits(cfg.teacher, train.crops, data, device).to(device)
        if dist and dist.rank == 0:
            dist.barrier()
    net = dist.wrap(model) if dist else model     # what trains; ``model`` is what is saved
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, best_acc, history = 0, -1.0, []
    last = os.path.join(out_dir, "last.pt")
    if resume and os.path.isfile(last):
        ck = torch.load(last, map_location=device, weights_only=False)
        if ck["train_config"] != asdict(cfg):
            raise AcamError(f"{out_dir!r} holds a run with other settings; choose another folder")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, best_acc, history = ck["epoch"] + 1, ck["best_acc"], ck["history"]
    main = dist is None or dist.rank == 0
    if main:
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            sec, per_seq = cfg.crops()          # the crops actually used, not None for "the default"
            json.dump({**asdict(cfg), "crop_seconds": sec, "crops_per_sequence": per_seq}, f, indent=1)
    val_loader = torch.utils.data.DataLoader(val, batch_size=cfg.batch_size, collate_fn=collate, pin_memory=pin)
    world = dist.world if dist else 1
    n_batches = -(-(-(-len(train) // world)) // per_rank_batch)            # per epoch and process
    label = "/".join(os.path.normpath(out_dir).split(os.sep)[-2:])
    show = progress and main
    bar = progress_bar(cfg.epochs * n_batches, show, label, "batch", start_epoch * n_batches, leave=False)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        net.train()
        sampler = EpochShuffle(len(train), epoch, dist.rank if dist else 0, dist.world if dist else 1)
        loader = torch.utils.data.DataLoader(train, batch_size=per_rank_batch, sampler=sampler,
                                             collate_fn=collate, generator=torch.Generator(), pin_memory=pin)
        # running sums stay on the device: the host reads them only for the progress line (every
        # PROGRESS_EVERY batches) and at the end of the epoch, not after every step
        total = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        n, step = 0, 0
        bar.set_description(f"{label} epoch {epoch + 1}/{cfg.epochs}", refresh=False)
        for x, y, idx in loader:
            x, y = _to(x, device), _to(y, device)
            logits = clip_logits(net(x))
            if soft is not None:
                loss = distillation_loss(logits, y, soft[_to(idx, device)], cfg.lam, cfg.temperature)
            else:
                loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach().double() * len(y)
            correct += (logits.argmax(-1) == y).sum()
            n += len(y)
            step += 1
            if show and (step == 1 or step % PROGRESS_EVERY == 0 or step == n_batches):   # this epoch so far
                bar.set_postfix(loss=f"{float(total) / n:.3f}", acc=f"{int(correct) / n:.3f}", refresh=False)
            bar.update(1)
        total, correct = float(total), int(correct)
        if dist:
            total, correct, n = dist.sum(total, correct, n)
        if not main:                       # rank 0 validates and writes; the others wait for it
            dist.barrier()
            continue
        vl, vy, _ = predict(model, val_loader, device)
        val_acc = float((vl.argmax(-1) == vy).mean())
        row = {"epoch": epoch, "loss": total / n, "train_acc": correct / n, "val_acc": val_acc,
               "seconds": time.perf_counter() - t0}
        history.append(row)
        state = {"model_config": ModelConfig(cfg.model).as_dict(), "model": model.state_dict(),
                 "train_config": asdict(cfg), "mfcc_stats": stats, "epoch": epoch, "history": history,
                 "val_acc": val_acc}
        if val_acc > best_acc:
            best_acc = val_acc
            _save(state, os.path.join(out_dir, "best.pt"))
        _save({**state, "optimizer": opt.state_dict(), "best_acc": best_acc}, last)
        _write_log(out_dir, history)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['train_acc']:.3f}", val_acc=f"{val_acc:.3f}", refresh=False)
        if dist:
            dist.barrier()
    bar.close()
    if dist:
        best_acc = dist.broadcast(best_acc)
        dist.close()
    return {"best_val_acc": best_acc, "epochs": cfg.epochs, "out_dir": out_dir}


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

    The global batch is ``--batch-size``, dealt out evenly to the processes by
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
    torch.save(obj, path + ".part")
    os.replace(path + ".part", path)


def _write_log(out_dir, history):
    path = os.path.join(out_dir, "log.csv")
    with open(path + ".part", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    os.replace(path + ".part", path)


def _load_init(model, path):
    """Load a local state dict (e.g. torchvision's ImageNet ResNet-50, SoundNet conv weights) where
    names and shapes match; the classifier is left as it is."""
    if not os.path.isfile(path):
        raise AcamError(f"init weights {path!r} do not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
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

    fanned = fans_out(scheduler, workers)
    threads = local_threads(workers, scheduler) if fanned else None
    if cfg.teacher:   # fill the soft-label cache once, not once per task
        data, train, _, _ = make_datasets(cfg, "spectrogram")
        teacher_soft_logits(cfg.teacher, train.crops, data, pick_device(cfg.device))
    tasks = []
    for lr in lrs:
        for t in temperatures:
            for lam in lams:
                run = os.path.join(out_dir, "grid", f"lr{lr:g}_T{t:g}_l{lam:g}")
                c = TrainConfig(**{**asdict(cfg), "lr": lr, "temperature": t, "lam": lam})
                tasks.append(Task(os.path.basename(run), _grid_task, (c, run, progress and not fanned, threads)))
    rep = run_tasks(tasks, scheduler, workers, retries, progress and fanned, "grid", echo)
    if echo is not None and fanned:
        echo(rep.summary(tasks))
    rep.raise_failures("grid run(s)", len(tasks))
    rows = [rep.results[t.name] for t in tasks]
    with open(os.path.join(out_dir, "grid.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    best = max(rows, key=lambda r: r["best_val_acc"])
    for name in ("best.pt", "last.pt", "log.csv", "config.json"):
        shutil.copy(os.path.join(best["run"], name), os.path.join(out_dir, name))
    return {**best, "best_val_acc": best["best_val_acc"], "epochs": cfg.epochs}


def _grid_task(cfg: TrainConfig, run: str, progress: bool, threads: int | None) -> dict:
    res = fit(cfg, run, progress, threads=threads)
    return {"lr": cfg.lr, "temperature": cfg.temperature, "lam": cfg.lam, "best_val_acc": res["best_val_acc"],
            "run": run}
