"""``learn reproduce``: the paper's protocol on a dataset, and its tables.

For each seed and training set (all scenarios, then each scenario alone): the teachers (D
DualCamNet, R ResNet-50, T temporal ResNet-50, AV AVNet); the students HearNet and SoundNet-5 on
ground truth (G) and distilled from D and from R; optionally the two controls; each evaluated on
the test cells of :mod:`.evaluate` (its own scenario's test split, all sequences of an unseen
scenario, the all-scenarios test split).  Learning rates are the paper's Table 5 unless ``grid``
chooses each student's lr (and T, lambda when distilled) on the validation split.

Controls (``controls``), which measure what the acoustic image adds:

- ``mono``: DualCamNet fed the single microphone's MFCC, the same at every pixel - an acoustic
  image without spatial information;
- ``oracle``: HearNet (on labels) fed the delay-and-sum signal steered at the true source (the
  dataset's ``beam``, physics v2) - spatial filtering with the answer known.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from acam.core.checks import number
from acam.core.errors import AcamError
from acam.core.safeio import write_text
from acam.core.tasks import Dep, Task, fans_out, local_threads, run_tasks
from acam.dataset.store import Dataset, read_crop

from . import names
from .checks import check_models, check_train_config
from .evaluate import GRANULARITIES, MAIN, cached_evaluation, evaluate_run
from .models import STUDENTS, TEACHERS
from .paper import PAPER
from .stats import bootstrap_interval, paired_bootstrap_interval
from .train import CROPS, KEEP, TrainConfig, fit

LR = {"dualcamnet": 1e-3, "resnet50": 1e-4, "temporal_resnet50": 1e-4, "avnet": 1e-4,
      ("hearnet", "G"): 1e-4, ("hearnet", "D"): 1e-3, ("hearnet", "R"): 1e-3,
      ("soundnet", "G"): 1e-4, ("soundnet", "D"): 1e-3, ("soundnet", "R"): 1e-4}
TRAIN_SETS = {"all": [1, 2, 3], "1": [1], "2": [2], "3": [3]}
CONTROLS = {"mono": ("dualcamnet", "mfcc_mono", "-"), "oracle": ("hearnet", "spectrogram_beam", "G")}
GRID = {"lr": (1e-3, 1e-4), "temperature": (1.0, 2.0, 5.0), "lam": (0.25, 0.5, 0.75)}
GROUPS = {"video": ("resnet50", "temporal_resnet50", "avnet")}     # names for several models at once


def per_model(text: str, what: str = "value") -> tuple[int | None, dict]:
    """``"30,video=4,soundnet=10"`` -> ``(30, {"resnet50": 4, ..., "soundnet": 10})``: a default and
    overrides by model (or ``video``: ResNet-50, temporal ResNet-50 and AVNet)."""
    default, over = None, {}
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        key, _, val = part.rpartition("=")
        try:
            n = int(val)
        except ValueError:
            raise AcamError(f"{what}={part!r} is not N or MODEL=N") from None
        if n < 1:
            raise AcamError(f"{what}={n} must be at least 1" + (f" ({part!r})" if key else ""))
        if not key:
            default = n
            continue
        models = GROUPS.get(key, (key,))
        if any(m not in TEACHERS + STUDENTS for m in models):
            raise AcamError(f"{what}={part!r}: {key!r} is not a model ({', '.join(TEACHERS + STUDENTS)}) or video")
        over.update({m: n for m in models})
    return default, over


def learning_rate(model: str, sup: str = "-", train_set: str = "all") -> float:
    """The paper's Table 5: HearNet distilled from DualCamNet takes 1e-3, but 1e-4 when trained on
    scenario 1 alone (its App. C); a teacher the paper did not distil from takes the D rate."""
    if model not in STUDENTS:
        return LR[model]
    if (model, sup) == ("hearnet", "D") and train_set == "1":
        return 1e-4
    return LR.get((model, sup), LR[(model, "D")])


def default_lr(model: str, train_on, teacher_model: str | None = None) -> float:
    """The learning rate a run takes when none is given (:func:`learning_rate`, the paper's Table 5):
    by model, supervision (labels, or the teacher it is distilled from) and training set."""
    sc = sorted(int(s) for s in train_on)
    sup = "G" if teacher_model is None else names.TAGS.get(teacher_model, "D")
    return learning_rate(model, sup, str(sc[0]) if len(sc) == 1 else "all")


@dataclass(frozen=True)
class Protocol:
    """What ``learn reproduce`` runs (every field has the paper's value as its default)."""

    epochs: int = 100
    seeds: tuple = (0,)
    train_sets: tuple = ("all", "1", "2", "3")
    teachers: tuple = TEACHERS
    students: tuple = STUDENTS
    distill_from: tuple = names.DISTILL_FROM
    controls: tuple = ()
    crops: int | None = None
    batch_size: int = 32
    epochs_by: dict = field(default_factory=dict)       # per-model overrides (per_model)
    crops_by: dict = field(default_factory=dict)
    lam: float = 0.5
    temperature: float = 1.0
    weight_decay: float = 5e-4
    teacher_loss: str = "frame"
    split: str = "stratified"
    init: str | None = None
    grid: bool = False
    keep: str = "best"
    device: str = "auto"
    options: dict = field(default_factory=dict)

    def check(self) -> None:
        check_models(self.teachers, self.students)
        for seed in self.seeds:
            number("seed", seed, lo=0, integer=True)
        bad = ([t for t in self.train_sets if t not in TRAIN_SETS] + [t for t in self.teachers if t not in TEACHERS]
               + [s for s in self.students if s not in STUDENTS] + [c for c in self.controls if c not in CONTROLS]
               + [t for t in self.distill_from if t not in TEACHERS])
        if bad:
            raise AcamError(f"unknown {bad}: train sets are {', '.join(TRAIN_SETS)}; teachers "
                            f"{', '.join(TEACHERS)}; students {', '.join(STUDENTS)}; controls {', '.join(CONTROLS)}")
        if not self.seeds:
            raise AcamError("seeds: give at least one seed")
        if self.keep not in KEEP:
            raise AcamError(f"keep={self.keep!r} must be one of {', '.join(KEEP)}")

    def epochs_of(self, model: str) -> int:
        return self.epochs_by.get(model, self.epochs)

    def crops_of(self, model: str) -> int | None:
        return self.crops_by.get(model, self.crops)

    def config(self, model: str, data: str, ts: str, seed: int, lr: float, **kw) -> TrainConfig:
        init = self.init if model in GROUPS["video"] else None
        return TrainConfig(model=model, data=data, train_on=TRAIN_SETS[ts], epochs=self.epochs_of(model),
                           batch_size=self.batch_size, lr=lr, seed=seed, crops_per_sequence=self.crops_of(model),
                           lam=kw.pop("lam", self.lam), temperature=kw.pop("temperature", self.temperature),
                           weight_decay=self.weight_decay, device=self.device, teacher_loss=self.teacher_loss,
                           split=self.split, init=init, **kw)


def _check_data(data: str, proto: Protocol) -> None:
    """Fail before any training when the dataset cannot serve what was asked (one line)."""
    ds = Dataset(data, proto.split)
    avail = ds.available()
    if not avail:
        raise AcamError(f"{data}: no sequence files are built")
    if "oracle" in proto.controls:
        s = avail[0]
        read_crop(ds.crop(s, 0, 1), ("beam",))


def reproduce(data: str, out_dir: str, proto: Protocol = Protocol(), progress: bool = False,
              scheduler: str | None = None, workers: int | None = None, retries: int = 1, echo=None) -> dict:
    """Run the protocol; returns ``{(model, column, train_set): [evaluation per seed]}`` and writes
    ``results.json`` and ``tables.md`` into ``out_dir``.

    Every training run (with its evaluation) is one task of :func:`acam.core.tasks.run_tasks`, so
    ``scheduler``/``workers`` spread the protocol over a Dask cluster; a distillation waits for its
    teacher, a grid-chosen student for its grid.  Finished runs are reused (``keep="best"`` keeps
    their best checkpoint only) with their scores when these were made of the same checkpoint and
    dataset, interrupted ones resume, so a re-run only does what is missing.
    Failed runs are named in the :class:`AcamError` raised after the tables of the others are written.
    """
    proto.check()
    data, out_dir = os.path.abspath(os.fspath(data)), os.fspath(out_dir)
    from .train import check_run_folder

    check_run_folder(out_dir, data)
    _check_data(data, proto)
    fanned = fans_out(scheduler, workers)
    threads = local_threads(workers, scheduler) if fanned else None
    plan = _Plan(data, out_dir, proto, progress and not fanned, threads)
    for seed in proto.seeds:
        for ts in proto.train_sets:
            plan.add_cell(seed, ts)
    for t in plan.tasks:                   # every setting checked before anything starts
        check_train_config(t.args[0])
        t.args[0].check()
    os.makedirs(out_dir, exist_ok=True)
    rep = run_tasks(plan.tasks, scheduler, workers, retries, progress, "runs", echo)
    if echo is not None and fanned:
        echo(rep.summary(plan.tasks))
    results: dict = {}
    chosen: dict = {}
    for name, res in rep.results.items():      # task order, so seeds stay in order per cell
        if name in plan.keys:
            results.setdefault(plan.keys[name], []).append(res["eval"])
            chosen[name] = res["settings"]
    write_text(os.path.join(out_dir, "results.json"), json.dumps(
        [{"model": k[0], "column": k[1], "train_set": k[2], "seeds": list(proto.seeds), "evaluations": v}
         for k, v in results.items()] + [{"settings": chosen}]))
    write_text(os.path.join(out_dir, "tables.md"), report(results, proto, Dataset(data, proto.split), chosen))
    rep.raise_failures("training run(s)", len(plan.tasks), "; the others are in tables.md")
    return results


class _Plan:
    """The protocol's tasks (teachers, controls, grid runs, students) and their table keys."""

    def __init__(self, data, out_dir, proto: Protocol, inner: bool, threads):
        self.data, self.out, self.proto, self.inner, self.threads = data, out_dir, proto, inner, threads
        self.tasks: list[Task] = []
        self.keys: dict = {}
        self.grids: dict = {}

    def _add(self, name, cfg, key, after=(), extra=(), fn=None):
        args = (cfg, os.path.join(self.out, name), self.inner, self.threads, self.proto.keep) + tuple(extra)
        self.tasks.append(Task(name, fn or _run_task, args + tuple(Dep(a) for a in after), tuple(after)))
        if key is not None:
            self.keys[name] = key

    def add_cell(self, seed: int, ts: str) -> None:
        p, teacher_task = self.proto, {}
        for t in p.teachers:
            name = f"seed{seed}/train_{ts}/{t}"
            self._add(name, p.config(t, self.data, ts, seed, learning_rate(t)), (t, "-", ts))
            teacher_task[t] = name
        for c in p.controls:
            model, inputs, sup = CONTROLS[c]
            name = f"seed{seed}/train_{ts}/{model}_{c}"
            self._add(name, p.config(model, self.data, ts, seed, learning_rate(model, sup, ts), inputs=inputs),
                      (model, c, ts))
        for s in p.students:
            for t in (None,) + tuple(x for x in p.distill_from if x in p.teachers):
                sup = "G" if t is None else names.TAGS[t]
                teacher = None if t is None else os.path.join(self.out, teacher_task[t])
                name = f"seed{seed}/train_{ts}/{s}_{sup}"
                cfg = p.config(s, self.data, ts, seed, learning_rate(s, sup, ts), teacher=teacher)
                after = () if t is None else (teacher_task[t],)
                if p.grid:
                    grid = self._grid(s, t, ts, cfg)
                    self._add(name, cfg, (s, sup, ts), after + grid, extra=(len(after), seed == p.seeds[0]))
                else:
                    self._add(name, cfg, (s, sup, ts), after)

    def _grid(self, student: str, teacher: str | None, ts: str, cfg: TrainConfig) -> tuple:
        """Grid runs of one student column on the first seed (made once per training set)."""
        sup = "G" if teacher is None else names.TAGS[teacher]
        key = (student, sup, ts)
        if key in self.grids:
            return self.grids[key]
        names_ = []
        first = self.proto.seeds[0]
        combos = ([(lr, cfg.temperature, cfg.lam) for lr in GRID["lr"]] if teacher is None else
                  [(lr, t, lam) for lr in GRID["lr"] for t in GRID["temperature"] for lam in GRID["lam"]])
        dep = () if teacher is None else (f"seed{first}/train_{ts}/{teacher}",)
        for lr, t, lam in combos:
            name = f"grid/train_{ts}/{student}_{sup}/lr{lr:g}_T{t:g}_l{lam:g}"
            c = replace(cfg, seed=first, lr=lr, temperature=t, lam=lam,
                        teacher=os.path.join(self.out, dep[0]) if dep else None)
            self._add(name, c, None, dep, fn=_grid_task)
            names_.append(name)
        self.grids[key] = tuple(names_)
        return self.grids[key]


def _run_task(cfg: TrainConfig, run: str, progress: bool, threads: int | None, keep: str, *rest) -> dict:
    """Train (or reuse) one run, then evaluate it on every test cell.  With a grid, ``rest`` holds the
    number of teacher results, whether this is the grid's seed (its winning run is reused) and then
    the teacher's and the grid runs' results."""
    settings = {"lr": cfg.lr, "temperature": cfg.temperature, "lam": cfg.lam}
    if rest and isinstance(rest[0], int):
        n_after, reuse, *deps = rest
        best = max(deps[n_after:], key=lambda r: r["best_val_acc"])     # the first of equals, in grid order
        settings = {k: best["config"][k] for k in settings}
        cfg = replace(cfg, **settings)
        if reuse and not os.path.isfile(os.path.join(run, "best.pt")):
            _copy_run(best["run"], run)
    fit(cfg, run, progress, threads=threads, keep=keep)
    ev = cached_evaluation(run) or evaluate_run(run, (1, 2, 3), device=cfg.device)
    return {"eval": _slim(ev), "settings": settings, "run": run}


def _grid_task(cfg: TrainConfig, run: str, progress: bool, threads: int | None, keep: str, *_teacher) -> dict:
    """One grid run: trained, not tested (the choice is made on validation)."""
    res = fit(cfg, run, progress, threads=threads, keep=keep)
    return {"run": run, "best_val_acc": res["best_val_acc"], "config": asdict(cfg.resolved())}


def _copy_run(src: str, dst: str) -> None:
    os.makedirs(dst, exist_ok=True)
    for name in ("best.pt", "last.pt", "log.csv", "config.json", "curve.png"):
        if os.path.isfile(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))


def _slim(ev: dict) -> dict:
    """An evaluation without its confusion matrices (they stay in the run's eval folder)."""
    return {cell: {g: {k: v for k, v in r.items() if k != "confusion"} for g, r in grans.items()}
            for cell, grans in ev.items()}


# --------------------------------------------------------------------------------------------- tables
ROW_ORDER = {"all": ("all", "1", "2", "3"), "1": ("1", "2", "3"), "2": ("1", "2", "3"), "3": ("1", "2", "3")}


def _rows(train_sets) -> list[tuple[str, str]]:
    return [(ts, t) for ts in sorted(train_sets, key=list(TRAIN_SETS).index) for t in ROW_ORDER[ts]]


def _counts(evals: list[dict], cell: str, gran: str) -> tuple[list, dict, dict] | None:
    """The seeds' results for the cell, and correct and counted windows per test sequence pooled
    over seeds, or None."""
    rs = [r for r in (e.get(cell, {}).get(gran) for e in evals) if r]
    if not rs:
        return None
    correct: dict = {}
    total: dict = {}
    for r in rs:
        for s, (c, n) in r["per_sequence"].items():
            correct[s] = correct.get(s, 0) + c
            total[s] = total.get(s, 0) + n
    return rs, correct, total


def _pooled(evals: list[dict], cell: str, gran: str):
    """Per-seed accuracies and the per-sequence counts pooled over seeds, or None."""
    counts = _counts(evals, cell, gran)
    if counts is None:
        return None
    rs, correct, total = counts
    keys = sorted(total)
    lo, hi = bootstrap_interval([correct[k] for k in keys], [total[k] for k in keys])
    return np.array([r["accuracy"] for r in rs]), (lo, hi), rs[0]["windows"], rs[0]["sequences"], rs[0]["split"]


# the comparisons the paper's question rests on: (model, column) minus (model, column)
PAIRS = ((("dualcamnet", "-"), ("dualcamnet", "mono")),
         (("hearnet", "oracle"), ("hearnet", "G")),
         (("hearnet", "D"), ("hearnet", "G")),
         (("hearnet", "R"), ("hearnet", "G")),
         (("soundnet", "D"), ("soundnet", "G")),
         (("soundnet", "R"), ("soundnet", "G")))


def _label(m: str, c: str) -> str:
    return f"{names.model(m)} {c if c != '-' else names.TAGS.get(m, '')}".strip()


def paired_table(results: dict, gran: str, train_sets, teachers_only: bool = False) -> str | None:
    """Differences of paired columns on the same test sequences, each with its paired 95% interval
    over sequences; None when no pair was run."""
    pairs = [(a, b) for a, b in PAIRS if any((*a, ts) in results and (*b, ts) in results for ts in train_sets)
             and not (teachers_only and a[0] in STUDENTS)]
    if not pairs:
        return None
    head = ["trained on", "tested on", "sequences"] + [f"{_label(*a)} - {_label(*b)}" for a, b in pairs]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ts, test in _rows(train_sets):
        cells, n = [], None
        for a, b in pairs:
            ka = _counts(results.get((*a, ts), []), test, gran)
            kb = _counts(results.get((*b, ts), []), test, gran)
            if ka is None or kb is None or set(ka[2]) != set(kb[2]):
                cells.append("-¹")
                continue
            keys = sorted(ka[2])
            ca, ta = [ka[1][k] for k in keys], [ka[2][k] for k in keys]
            cb, tb = [kb[1][k] for k in keys], [kb[2][k] for k in keys]
            lo, hi = paired_bootstrap_interval(ca, ta, cb, tb)
            d = sum(ca) / sum(ta) - sum(cb) / sum(tb)
            cells.append(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
            n = len(keys)
        if n is not None:
            out.append(f"| {names.train_set(TRAIN_SETS[ts])} | {names.scenario(test)} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _cell_text(pooled) -> str:
    accs, (lo, hi), *_ = pooled
    spread = f" ± {accs.std():.3f}" if len(accs) > 1 else ""
    return f"{accs.mean():.3f}{spread} [{lo:.2f}, {hi:.2f}]"


def _why_empty(model: str, gran: str) -> str:
    return "n/a²" if gran == "frame" and model == "temporal_resnet50" else "-¹"


def table(results: dict, columns: list[tuple[str, str]], gran: str, train_sets) -> str:
    """One markdown table: rows (trained on, tested on), a count column, one column per (model, column)."""
    head = ["trained on", "tested on", "test set", "windows / sequences"] + [_label(m, c) for m, c in columns]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ts, test in _rows(train_sets):
        cells, count, split = [], None, None
        for m, c in columns:
            pooled = _pooled(results.get((m, c, ts), []), test, gran)
            if pooled is None:
                cells.append(_why_empty(m, gran) if (m, c, ts) in results else "-¹")
                continue
            cells.append(_cell_text(pooled))
            count, split = count or f"{pooled[2]} / {pooled[3]}", pooled[4]
        if count is None and not any((m, c, ts) in results for m, c in columns):
            continue
        out.append(f"| {names.train_set(TRAIN_SETS[ts])} | {names.scenario(test)} | {split or '-'} | "
                   f"{count or '0 / 0³'} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def paper_table(columns, train_sets) -> str:
    """The paper's numbers for the same rows and columns (one run per cell, real data)."""
    head = ["trained on", "tested on"] + [_label(m, c) for m, c in columns]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ts, test in _rows(train_sets):
        vals = [PAPER.get((m, c), {}).get((ts, test)) for m, c in columns]
        if all(v is None for v in vals):
            continue
        out.append(f"| {names.train_set(TRAIN_SETS[ts])} | {names.scenario(test)} | "
                   + " | ".join("-" if v is None else f"{v:.4f}" for v in vals) + " |")
    return "\n".join(out) + "\n"


def report(results: dict, proto: Protocol, ds: Dataset, chosen: dict | None = None) -> str:
    """tables.md: the protocol, then teachers and students per 5 s window (and teachers per second and
    per frame), each beside the paper's numbers, with footnotes."""
    keys = list(results)
    teach = [(m, c) for m, c in dict.fromkeys((k[0], k[1]) for k in keys) if m not in STUDENTS]
    stud = [(m, c) for m, c in dict.fromkeys((k[0], k[1]) for k in keys) if m in STUDENTS]
    sets = proto.train_sets
    out = [protocol_text(proto, ds), ""]
    if teach:
        for gran in (MAIN, "second", "frame"):
            out += [f"## Teachers{' and the mono control' if any(c == 'mono' for _, c in teach) else ''}, "
                    f"scored {GRANULARITIES[gran]}", "", table(results, teach, gran, sets)]
    if stud:
        out += ["## Students, scored per 5 s window", "", table(results, stud, MAIN, sets)]
    paired = paired_table(results, MAIN, sets)
    if paired:
        out += ["## Paired differences, per 5 s window", "", PAIRED_TEXT, "", paired]
        frames = paired_table(results, "frame", sets, teachers_only=True)
        if frames:
            out += ["## Paired differences of the teachers, per frame", "", frames]
    out += ["## The paper (real data, one run per cell; its tables 1-3)", "",
            paper_table([k for k in teach + stud if k in PAPER], sets), FOOTNOTES, ""]
    if proto.grid and chosen:
        out += ["## Settings chosen on validation (grid, first seed)", "", "| run | lr | T | lambda |",
                "|---|---|---|---|"] + [f"| {n} | {s['lr']:g} | {s['temperature']:g} | {s['lam']:g} |"
                                        for n, s in chosen.items() if n.startswith(f"seed{proto.seeds[0]}/")]
    return "\n".join(out) + "\n"


PAIRED_TEXT = """Each cell: the first column's accuracy minus the second's on the same test sequences (counts
pooled over seeds) and a 95% paired percentile-bootstrap interval over those sequences (2000
resamples, one draw of sequences for both). An interval that excludes 0 says the difference
would likely hold on other test recordings of this dataset; one that includes 0 does not
support a difference either way."""

FOOTNOTES = """Cells: mean over seeds ± standard deviation over seeds (when there are several) and, in
brackets, a 95% percentile-bootstrap interval over test sequences (2000 resamples; a resample draws
sequences with replacement and keeps all their windows, counts pooled over seeds): the interval
says how much the number could move with other test recordings, the ± how much with another seed.
Chance level is 1/14 = 0.071 (every action is equally frequent in every test cell of the stratified
split and in every whole scenario).

¹ not run in this protocol (model, column or training set not asked for), or the run failed (see
the error at the end of the command's output).
² the temporal ResNet-50 gives one output per one-second clip (its 5 frames' logits averaged), so
it has no per-frame score.
³ no sequences in this cell (the dataset's split has none for it)."""


def _by(default, over: dict, models=None) -> str:
    """``30`` or ``30 (ResNet-50 4, AVNet 4)``."""
    extra = [f"{names.model(m)} {v}" for m, v in over.items() if models is None or m in models]
    return f"{default}" + (f" ({', '.join(extra)})" if extra else "")


def protocol_text(proto: Protocol, ds: Dataset) -> str:
    """What was run, in words: data, split and counts, test cells, windows, reductions, training."""
    import textwrap

    split = ("stratified by scenario x action, seed 42, by whole recording" if proto.split == "stratified" else
             "the authors' 10 s blocks (seed 42, one list per training set; blocks of a recording may "
             "fall into different splits)")
    counts = []
    for ts in proto.train_sets:
        c = ds.split_counts(TRAIN_SETS[ts], TRAIN_SETS[ts])
        counts.append(f"{names.train_set(TRAIN_SETS[ts])} {c['train']['sequences']} / {c['val']['sequences']} / "
                      f"{c['test']['sequences']}")
    video = ("frozen ImageNet backbone (weights from " + os.path.basename(proto.init) + "), classifier only, "
             "frames resized to 256 and centre-cropped to 224" if proto.init else
             "trained from scratch on the stored frames (no ImageNet weights given: not the authors' setting)")
    tc, sc = CROPS["teacher"], CROPS["student"]
    lr = ("chosen on validation per student column and training set from lr {1e-3, 1e-4} (and, distilled, "
          "T {1, 2, 5} x lambda {0.25, 0.5, 0.75}: our grids, the paper does not state its own) on the first "
          "seed" if proto.grid else "the paper's Table 5 (HearNet D: 1e-4 on scenario 1 alone, else 1e-3)")
    what = {"mono": "mono (DualCamNet on the single microphone's MFCC, the same at every pixel: no spatial "
                    "information)",
            "oracle": "oracle (HearNet on labels, fed the delay-and-sum signal steered at the true source)"}
    items = [
        f"data `{ds.folder}`: {len(ds.available())} sequences; split {split}. Train / validation / test "
        f"sequences per training set: {'; '.join(counts)}.",
        "test cells: a model is tested on its own scenario's test split, on **all** sequences of a scenario it "
        "was not trained on, and (trained on all scenarios) on the all-scenarios test split.",
        "windows: each test sequence tiled with non-overlapping 5 s windows from its first frame (a shorter "
        "sequence gives one window repeating it cyclically). Students score each window; teachers run on "
        "one-second crops and are scored per 5 s window (the mean of its 60 frame logits, the reduction their "
        "soft labels use), per one-second crop (the mean of 12 frame logits) and per frame.",
        f"training: epochs {_by(proto.epochs, proto.epochs_by)}; seeds {', '.join(map(str, proto.seeds))}; Adam, "
        f"batch {proto.batch_size}; crops per training sequence (fixed positions) "
        f"{_by(proto.crops or tc[1], proto.crops_by, TEACHERS)} of {tc[0]:g} s for teachers, "
        f"{_by(proto.crops or sc[1], proto.crops_by, STUDENTS)} of {sc[0]:g} s for students; the best epoch "
        f"by validation accuracy (teachers per frame, students per window; learning curves in each run's "
        f"`curve.png`); teacher loss per {proto.teacher_loss}; L2 {proto.weight_decay:g} on the weights the "
        f"authors regularised; learning rates {lr}.",
        f"distillation: T = {proto.temperature:g}, lambda = {proto.lam:g} (unless the grid chose); the teacher's "
        "logits averaged over the crop's 60 frames, run one second at a time.",
        f"video teachers: {video}.",
        f"controls: {'; '.join(what[c] for c in proto.controls) or 'none'}.",
        f"chance level 1/14 = {names.CHANCE:.3f}.",
    ]
    body = "\n".join(textwrap.fill(t, 100, initial_indent="- ", subsequent_indent="  ") for t in items)
    return f"# `learn reproduce`: results\n\nProtocol (docs/RESULTS.md explains each choice):\n\n{body}\n"
