"""``learn reproduce``: the paper's protocol on a dataset, and its tables.

For each training set (all scenarios, then each scenario alone): the teachers DualCamNet (D) and
ResNet-50 (R); the students HearNet and SoundNet-5 trained on ground truth (G), distilled from D and
distilled from R; each tested on scenarios 1, 2 and 3.  Learning rates are the paper's (Table 5).
Several seeds give mean and spread.
"""

from __future__ import annotations

import json
import os

import numpy as np

from acam.core.tasks import Dep, Task, fans_out, local_threads, run_tasks

from .evaluate import evaluate_run
from .train import TrainConfig, fit

LR = {"dualcamnet": 1e-3, "resnet50": 1e-4, "temporal_resnet50": 1e-4, "avnet": 1e-4,
      ("hearnet", "G"): 1e-4, ("hearnet", "D"): 1e-4, ("hearnet", "R"): 1e-3,
      ("soundnet", "G"): 1e-4, ("soundnet", "D"): 1e-3, ("soundnet", "R"): 1e-4}
TRAIN_SETS = {"all": [1, 2, 3], "1": [1], "2": [2], "3": [3]}


def reproduce(data: str, out_dir: str, epochs: int = 100, seeds=(0,), train_sets=("all", "1", "2", "3"),
              teachers=("dualcamnet", "resnet50"), students=("hearnet", "soundnet"), crops: int | None = None,
              batch_size: int = 32, device: str = "auto", progress: bool = False, lam: float = 0.5,
              temperature: float = 1.0, scheduler: str | None = None, workers: int | None = None,
              retries: int = 1, echo=None) -> dict:
    """Run the protocol; returns ``{(model, supervision, train_set): {test: [acc per seed]}}`` and
    writes ``results.json`` and ``tables.md`` into ``out_dir``.

    Every training run (with its evaluation) is one task of :func:`acam.core.tasks.run_tasks`, so
    ``scheduler``/``workers`` spread the protocol over a Dask cluster; a distillation waits for its
    teacher.  Runs that finished before are resumed from their last checkpoint (nothing left to
    train), so a re-run only does what is missing.  Failed runs are named in the :class:`AcamError`
    raised after the tables of the others are written.
    """
    data, out_dir = os.fspath(data), os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    tag = {"dualcamnet": "D", "resnet50": "R", "temporal_resnet50": "TR", "avnet": "AV"}
    fanned = fans_out(scheduler, workers)
    threads = local_threads(workers, scheduler) if fanned else None
    inner = progress and not fanned        # per-epoch bars only when runs go one after the other
    tasks, keys = [], {}
    for seed in seeds:
        for ts in train_sets:
            train_on = TRAIN_SETS[ts]
            teacher_task = {}
            for t in teachers:
                name = f"seed{seed}/train_{ts}/{t}"
                cfg = TrainConfig(t, data, train_on, epochs, batch_size, LR[t], seed, None, crops, device=device)
                tasks.append(Task(name, _run_task, (cfg, os.path.join(out_dir, name), inner, threads)))
                keys[name] = (t, "-", ts)
                teacher_task[tag[t]] = name
            for s in students:
                for sup in ["G"] + [tag[t] for t in teachers]:
                    name = f"seed{seed}/train_{ts}/{s}_{sup}"
                    teacher = None if sup == "G" else os.path.join(out_dir, teacher_task[sup])
                    lr = LR.get((s, sup), LR[(s, "D")])
                    cfg = TrainConfig(s, data, train_on, epochs, batch_size, lr, seed, None, crops, teacher,
                                      lam, temperature, device=device)
                    after = () if sup == "G" else (teacher_task[sup],)
                    tasks.append(Task(name, _run_task, (cfg, os.path.join(out_dir, name), inner, threads)
                                      + tuple(Dep(a) for a in after), after))
                    keys[name] = (s, sup, ts)
    rep = run_tasks(tasks, scheduler, workers, retries, progress, "runs", echo)
    if echo is not None and fanned:
        echo(rep.summary(tasks))
    results: dict = {}
    for name, res in rep.results.items():      # task order, so seeds stay in order per cell
        slot = results.setdefault(keys[name], {})
        for k, v in res.items():
            slot.setdefault(k, []).append(v)
    table = tables(results)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump([{"model": k[0], "supervision": k[1], "train_on": k[2], "accuracy": v}
                   for k, v in results.items()], f, indent=1)
    with open(os.path.join(out_dir, "tables.md"), "w") as f:
        f.write(table)
    rep.raise_failures("training run(s)", len(tasks), "; the others are in tables.md")
    return results


def _run_task(cfg: TrainConfig, run: str, progress: bool, threads: int | None, *_teacher_done) -> dict:
    """Train (or resume) one run, then evaluate it on every scenario."""
    fit(cfg, run, progress, threads=threads)
    return evaluate_run(run, (1, 2, 3), device=cfg.device)


def tables(results: dict) -> str:
    """Markdown tables in the paper's layout: rows model (supervision), columns trained-on x tested-on;
    each cell mean +- std over seeds."""
    train_sets = sorted({k[2] for k in results}, key=lambda s: ["all", "1", "2", "3"].index(s))
    tests = ["1", "2", "3"]
    head = "| model | supervision | " + " | ".join(f"train {ts} / test {t}" for ts in train_sets for t in tests) + " |"
    out = [head, "|---|---|" + "---|" * (len(train_sets) * len(tests))]
    for model, sup in dict.fromkeys((k[0], k[1]) for k in results):
        cells = []
        for ts in train_sets:
            res = results.get((model, sup, ts), {})
            for t in tests:
                v = np.array(res.get(t, []), float)
                v = v[np.isfinite(v)]
                cells.append("-" if v.size == 0 else f"{v.mean():.3f}" + (f" +- {v.std():.3f}" if v.size > 1 else ""))
        out.append(f"| {model} | {sup} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
