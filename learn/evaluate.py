"""Evaluation: accuracy per train/test scenario combination (the paper's table layout) and 14 x 14
confusion matrices (CSV and PNG, with class names)."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import torch

from acam.core.safeio import atomic_output, write_text
from acam.dataset.sounds import ACTIONS
from acam.dataset.store import Dataset

from .checkpoint import check_fits_data
from .data import CropDataset, collate
from .train import CROPS, load_run, pick_device, predict
from .models import STUDENTS


def confusion(pred: np.ndarray, labels: np.ndarray, n: int = len(ACTIONS)) -> np.ndarray:
    m = np.zeros((n, n), int)
    np.add.at(m, (labels, pred), 1)
    return m


def evaluate_run(run_dir: str, test_on=(1, 2, 3), data: str | None = None, device: str = "auto",
                 out_dir: str | None = None, split: str = "test") -> dict:
    """Accuracy of a run's best checkpoint on each test scenario (and all together); writes
    ``accuracy.csv``, ``accuracy.md`` and ``confusion_<scenarios>.csv/.png`` into ``out_dir``
    (default ``<run>/eval``)."""
    dev = pick_device(device)
    model, ckpt = load_run(run_dir, dev)
    tc = ckpt["train_config"]
    ds = Dataset(data or tc["data"])
    check_fits_data(model, ckpt["model_config"], ds, data or tc["data"])
    kind = "student" if tc["model"] in STUDENTS else "teacher"
    sec, n = CROPS[kind]
    sec = tc.get("crop_seconds") or sec
    n = tc.get("crops_per_sequence") or n
    out_dir = out_dir or os.path.join(run_dir, "eval")
    os.makedirs(out_dir, exist_ok=True)
    results = {}
    groups = [(str(s), [s]) for s in test_on] + ([("all", list(test_on))] if len(test_on) > 1 else [])
    for name, scen in groups:
        crops = ds.crops(split, sec, n, seed=1234, scenarios=scen)
        if not crops:
            results[name] = float("nan")
            continue
        loader = torch.utils.data.DataLoader(CropDataset(ds, model.modality, crops, ckpt.get("mfcc_stats"), False),
                                             batch_size=16, collate_fn=collate)
        logits, labels, _ = predict(model, loader, dev)
        pred = logits.argmax(-1)
        results[name] = float((pred == labels).mean())
        cm = confusion(pred, labels)
        _write_confusion(cm, os.path.join(out_dir, f"confusion_{name}"))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "train_on"] + [f"test_{k}" for k in results])
    w.writerow([tc["model"], "+".join(map(str, tc["train_on"]))] + [f"{v:.4f}" for v in results.values()])
    write_text(os.path.join(out_dir, "accuracy.csv"), buf.getvalue())
    write_text(os.path.join(out_dir, "accuracy.md"), accuracy_table([(tc["model"], tc["train_on"], results)]))
    return results


def accuracy_table(rows) -> str:
    """Markdown: one row per (model, trained on), one column per test scenario."""
    cols = list(rows[0][2])
    out = ["| model | trained on | " + " | ".join(f"test {c}" for c in cols) + " |",
           "|---|---|" + "---|" * len(cols)]
    for model, train_on, res in rows:
        tr = "all" if sorted(train_on) == [1, 2, 3] else "+".join(map(str, train_on))
        out.append(f"| {model} | {tr} | " + " | ".join("-" if np.isnan(res.get(c, np.nan)) else f"{res[c]:.3f}"
                                                         for c in cols) + " |")
    return "\n".join(out) + "\n"


def _write_confusion(cm: np.ndarray, stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["true \\ predicted"] + list(ACTIONS))
    for name, row in zip(ACTIONS, cm):
        w.writerow([name] + list(map(int, row)))
    write_text(stem + ".csv", buf.getvalue())
    fig, ax = plt.subplots(figsize=(8, 7), dpi=100)
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
    ax.set_title(os.path.basename(stem))
    fig.tight_layout()
    try:
        with atomic_output(stem + ".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
