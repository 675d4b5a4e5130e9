"""Evaluation of a run on the paper's test cells: deterministic windows, counts, intervals, confusion
matrices.

Test cells of a run trained on the scenarios ``train_on``:

- a scenario it was trained on: that scenario's **test split** (of the training set's list);
- a scenario it never saw: **all** sequences of that scenario (the paper's "tested on the other two
  scenarios using all the available data");
- ``all`` (training on several scenarios): the test split of all of them as one number (the
  paper's "All" row).

Each sequence is tiled with non-overlapping windows from its first frame (a sequence shorter than a
window gives one window that repeats it cyclically).  Students are scored per 5 s window.  Teachers
run on one-second crops (as they were trained) and are scored three ways: per 5 s window (the mean
of its 60 frame logits, the same windows as the students' and the reduction used for their soft
labels), per one-second crop (the mean of its 12 frame logits) and, for frame-wise teachers, per
frame (the authors' metric).  Every cell records its windows and sequences, the correct windows
per sequence (for intervals over sequences, :mod:`.stats`), and sequence-level votes.
"""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import torch

from acam.core.safeio import write_text
from acam.dataset.sounds import ACTIONS
from acam.dataset.store import Dataset

from . import names
from .checkpoint import check_fits_data
from .data import CropDataset, collate
from .models import BLOCK, STUDENTS
from .stats import bootstrap_interval, sequence_votes, wilson_interval
from .train import CROPS, load_run, pick_device, predict, run_modality

WINDOW_SECONDS = CROPS["student"][0]
MAIN = "window"                      # the granularity of the tables' main numbers
GRANULARITIES = {"window": "per 5 s window", "second": "per 1 s crop", "frame": "per frame"}


def confusion(pred: np.ndarray, labels: np.ndarray, n: int = len(ACTIONS)) -> np.ndarray:
    m = np.zeros((n, n), int)
    np.add.at(m, (labels, pred), 1)
    return m


def test_cells(train_on, test_on=(1, 2, 3)) -> list[tuple[str, str | None, list[int]]]:
    """``(key, split or None for every sequence, scenarios)`` per test cell (module notes)."""
    seen = {int(s) for s in train_on}
    cells = [(str(s), "test" if s in seen else None, [int(s)]) for s in test_on]
    if len(seen) > 1:
        cells.append(("all", "test", sorted(seen)))
    return cells


class _Tally:
    """Predictions of one cell at one granularity."""

    def __init__(self):
        self.labels, self.preds, self.seqs = [], [], []

    def add(self, label: int, logits: np.ndarray, seq: str) -> None:
        self.labels.append(int(label))
        self.preds.append(int(np.argmax(logits)))
        self.seqs.append(seq)

    def summary(self) -> dict:
        y, p = np.array(self.labels, int), np.array(self.preds, int)
        per = {}
        for s, ok in zip(self.seqs, (y == p)):
            c = per.setdefault(s, [0, 0])
            c[0] += int(ok)
            c[1] += 1
        right, n = sequence_votes(y, p, self.seqs)
        counts = np.array(list(per.values())).reshape(-1, 2)
        return {"accuracy": float((y == p).mean()) if len(y) else float("nan"), "windows": int(len(y)),
                "sequences": len(per), "per_sequence": per,
                "interval": list(bootstrap_interval(counts[:, 0], counts[:, 1])),
                "votes": [right, n], "votes_interval": list(wilson_interval(right, n)),
                "confusion": confusion(p, y).tolist() if len(y) else []}


def _teacher_cell(segments, logits_of, framewise: bool) -> dict:
    """Tallies per window, per second and per frame from each segment's one-second logits."""
    t = {g: _Tally() for g in (("window", "second", "frame") if framewise else ("window", "second"))}
    per_window = int(round(WINDOW_SECONDS))
    for g in segments:
        nb = max(1, g.n_frames // BLOCK)
        blocks = [logits_of(g.seq["name"], g.start + BLOCK * b) for b in range(nb)]
        y, name = g.seq["action"], g.seq["name"]
        for z in blocks:
            t["second"].add(y, z.mean(0) if z.ndim == 2 else z, name)
            if framewise:
                for f in z:
                    t["frame"].add(y, f, name)
        for w in range(max(1, g.n_frames // (BLOCK * per_window))):
            zs = [blocks[(per_window * w + j) % nb] for j in range(per_window)]
            t["window"].add(y, np.mean([z.mean(0) if z.ndim == 2 else z for z in zs], 0), name)
    return {k: v.summary() for k, v in t.items()}


def _student_cell(segments, logits_of) -> dict:
    t = _Tally()
    n = int(round(WINDOW_SECONDS * BLOCK))
    for g in segments:
        for w in range(max(1, g.n_frames // n)):
            t.add(g.seq["action"], logits_of(g.seq["name"], g.start + n * w), g.seq["name"])
    return {"window": t.summary()}


def _predict_crops(model, ds: Dataset, modality: str, wanted: dict, device, batch: int) -> dict:
    """Logits of each distinct crop ``(sequence, start) -> Crop``: frame logits for frame-wise models."""
    keys = list(wanted)
    loader = torch.utils.data.DataLoader(CropDataset(ds, modality, [wanted[k] for k in keys], cache=False),
                                         batch_size=batch, collate_fn=collate)
    logits, _, idx = predict(model, loader, device, frames=True)
    return {keys[i]: logits[j] for j, i in enumerate(idx)}


def evaluate_run(run_dir: str, test_on=(1, 2, 3), data: str | None = None, device: str = "auto",
                 out_dir: str | None = None, batch_size: int = 16) -> dict:
    """Scores of a run's best checkpoint on every test cell; returns ``{cell: {granularity: summary}}``
    and writes ``eval.json``, ``accuracy.csv``, ``accuracy.md`` and ``confusion_<cell>.csv/.png`` into
    ``out_dir`` (default ``<run>/eval``)."""
    dev = pick_device(device)
    model, ckpt = load_run(run_dir, dev)
    tc = ckpt["train_config"]
    ds = Dataset(data or tc["data"], tc.get("split", "stratified"))
    if run_modality(ckpt) in ("mfcc", "av"):
        check_fits_data(model, ckpt["model_config"], ds, data or tc["data"])
    student = tc["model"] in STUDENTS
    sec = WINDOW_SECONDS if student else 1.0
    n = int(round(sec * ds.frame_rate))
    cells = {}
    wanted = {}
    for key, split, scen in test_cells(tc["train_on"], test_on):
        segs = ds.segments(split, scen, tc["train_on"])
        cells[key] = (split, segs)
        for g in segs:
            for i in range(max(1, g.n_frames // n)):
                wanted[(g.seq["name"], g.start + n * i)] = ds.crop(g.seq, g.start + n * i, n)
    got = _predict_crops(model, ds, run_modality(ckpt), wanted, dev, batch_size) if wanted else {}
    logits_of = lambda name, start: got[(name, start)]       # noqa: E731
    results = {}
    for key, (split, segs) in cells.items():
        if not segs:
            results[key] = {}
            continue
        results[key] = (_student_cell(segs, logits_of) if student
                        else _teacher_cell(segs, logits_of, getattr(model, "FRAMEWISE", False)))
        for g in results[key].values():
            g["split"] = split or "all sequences"
    _write_outputs(results, ckpt, out_dir or os.path.join(run_dir, "eval"),
                   _stamp(run_dir, data or tc["data"], test_on))
    return results


def _stamp(run_dir: str, data: str, test_on) -> dict:
    """What an evaluation was made of: the checkpoint (size, time), the dataset's manifest, the cells."""
    st = os.stat(os.path.join(run_dir, "best.pt"))
    man = os.stat(os.path.join(data, "manifest.json"))
    return {"best": [st.st_size, st.st_mtime_ns], "data": os.path.abspath(data),
            "manifest": [man.st_size, man.st_mtime_ns], "test_on": [int(t) for t in test_on]}


def cached_evaluation(run_dir: str, test_on=(1, 2, 3), data: str | None = None) -> dict | None:
    """The results in ``<run>/eval/eval.json`` when they were made of this very checkpoint, dataset
    and test cells (a re-run of ``learn reproduce`` then skips scoring finished runs), else None."""
    path = os.path.join(run_dir, "eval", "eval.json")
    try:
        with open(path, encoding="utf-8") as f:
            got = json.load(f)
        if data is None:
            with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
                data = json.load(f)["data"]
        if got.get("stamp") == _stamp(run_dir, data, test_on) and isinstance(got.get("cells"), dict):
            return got["cells"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def _write_outputs(results: dict, ckpt: dict, out_dir: str, stamp: dict) -> None:
    tc = ckpt["train_config"]
    sup = ckpt.get("supervision", "-")
    os.makedirs(out_dir, exist_ok=True)
    write_text(os.path.join(out_dir, "eval.json"), json.dumps(
        {"model": tc["model"], "supervision": sup, "inputs": tc.get("inputs"), "train_on": tc["train_on"],
         "stamp": stamp, "cells": results}))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "supervision", "train_on", "test", "test_set", "granularity", "accuracy",
                "ci95_lo", "ci95_hi", "windows", "sequences", "votes_right", "votes_n"])
    for cell, grans in results.items():
        for g, r in grans.items():
            w.writerow([tc["model"], sup, "+".join(map(str, tc["train_on"])), cell, r["split"], g,
                        f"{r['accuracy']:.4f}", f"{r['interval'][0]:.4f}", f"{r['interval'][1]:.4f}",
                        r["windows"], r["sequences"], *r["votes"]])
    write_text(os.path.join(out_dir, "accuracy.csv"), buf.getvalue())
    write_text(os.path.join(out_dir, "accuracy.md"), run_table(results, tc, sup))
    title = f"{names.model(tc['model'])}, {names.supervision_label(sup, tc.get('inputs'))}"
    for cell, grans in results.items():
        if MAIN in grans:
            r = grans[MAIN]
            _write_confusion(np.array(r["confusion"]), os.path.join(out_dir, f"confusion_{cell}"),
                             f"{title}\ntrained on {names.train_set(tc['train_on'])}, tested on "
                             f"{names.scenario(cell)} ({r['split']}): accuracy {r['accuracy']:.3f} "
                             f"({r['windows']} windows of 5 s, {r['sequences']} sequences)")


def run_table(results: dict, tc: dict, sup: str) -> str:
    """Markdown: one row per test cell and granularity, with counts, a 95% interval over sequences and
    the sequence-level votes."""
    out = [f"{names.model(tc['model'])}, {names.supervision_label(sup, tc.get('inputs'))}, trained on "
           f"{names.train_set(tc['train_on'])}; chance level 1/14 = {names.CHANCE:.3f}", "",
           "| tested on | test set | scored | accuracy | 95% interval (sequences) | windows | sequences "
           "| sequence votes (Wilson 95%) |", "|---|---|---|---|---|---|---|---|"]
    for cell, grans in results.items():
        if not grans:
            out.append(f"| {names.scenario(cell)} | no sequences | - | - | - | 0 | 0 | - |")
        for g, r in grans.items():
            lo, hi = r["interval"]
            vlo, vhi = r["votes_interval"]
            out.append(f"| {names.scenario(cell)} | {r['split']} | {GRANULARITIES[g]} | {r['accuracy']:.3f} | "
                       f"[{lo:.3f}, {hi:.3f}] | {r['windows']} | {r['sequences']} | "
                       f"{r['votes'][0]}/{r['votes'][1]} [{vlo:.2f}, {vhi:.2f}] |")
    return "\n".join(out) + "\n"


def _write_confusion(cm: np.ndarray, stem: str, title: str | None = None) -> None:
    from acam.core.figures import save_png, subplots

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["true \\ predicted"] + list(ACTIONS))
    for name, row in zip(ACTIONS, cm):
        w.writerow([name] + list(map(int, row)))
    write_text(stem + ".csv", buf.getvalue())
    fig, ax = subplots(figsize=(8, 7.4), dpi=100)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(ACTIONS)), ACTIONS, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(ACTIONS)), ACTIONS, fontsize=7)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or os.path.basename(stem), fontsize=8)
    fig.tight_layout()
    save_png(fig, stem + ".png")
