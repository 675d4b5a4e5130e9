"""Figures of a training run: the learning curve (loss and accuracy per epoch, training and validation)."""

from __future__ import annotations

from acam.core.figures import save_png, subplots

from . import names


def learning_curve(history: list[dict], path: str, cfg, sup: str) -> None:
    """Two panels over epochs: loss (training: the optimised loss; validation: cross-entropy against
    the labels) and accuracy (at the run's granularity: per frame for frame-wise teachers, per
    window for students); titled with model, supervision and training set."""
    from matplotlib.ticker import MaxNLocator

    ep = [r["epoch"] + 1 for r in history]
    fig, (a, b) = subplots(1, 2, figsize=(10, 4), dpi=100)
    a.plot(ep, [r["loss"] for r in history], "o-", ms=3, label="training (optimised loss)")
    if "val_loss" in history[0]:
        a.plot(ep, [r["val_loss"] for r in history], "s-", ms=3, label="validation (cross-entropy)")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend(fontsize=8)
    b.plot(ep, [r["train_acc"] for r in history], "o-", ms=3, label="training")
    b.plot(ep, [r["val_acc"] for r in history], "s-", ms=3, label="validation")
    b.axhline(names.CHANCE, color="grey", ls=":", lw=1, label="chance (1/14)")
    best = max(range(len(history)), key=lambda i: (history[i]["val_acc"], i))
    b.plot([ep[best]], [history[best]["val_acc"]], "k*", ms=10, label=f"kept (epoch {ep[best]})")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    b.set_ylim(0, 1)
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    label = names.supervision_label(sup, cfg.inputs) if sup != "-" or cfg.inputs else "teacher"
    fig.suptitle(f"{names.model(cfg.model)}, {label}, trained on {names.train_set(cfg.train_on)} "
                 f"(seed {cfg.seed}, lr {cfg.lr:g})", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
