"""Checks of training settings, by parameter name, before any data is read or model built."""

from __future__ import annotations

from acam.core.checks import choice, number
from acam.core.errors import AcamError

from .models import REGISTRY, STUDENTS, TEACHERS

DEVICES = ("auto", "cpu", "cuda")


def check_train_config(cfg) -> None:
    """Refuse a :class:`~acam.learn.train.TrainConfig` that cannot train (``epochs=0``, ``lr=nan``...)."""
    choice("model", cfg.model, tuple(REGISTRY))
    choice("device", cfg.device, DEVICES)
    number("epochs", cfg.epochs, lo=1, integer=True)
    number("batch_size", cfg.batch_size, lo=1, integer=True)
    number("lr", cfg.lr, lo=0, lo_open=True)
    number("seed", cfg.seed, lo=0, integer=True)
    number("crop_seconds", cfg.crop_seconds, lo=0, lo_open=True, hi=3600, none_ok=True)
    number("crops_per_sequence", cfg.crops_per_sequence, lo=1, hi=10_000, integer=True, none_ok=True)
    number("lam", cfg.lam, lo=0, hi=1)
    number("temperature", cfg.temperature, lo=0, lo_open=True)
    number("weight_decay", cfg.weight_decay, lo=0)
    train_on = list(cfg.train_on) if isinstance(cfg.train_on, (list, tuple)) else None
    if not train_on or any(s not in (1, 2, 3) for s in train_on):
        raise AcamError(f"train_on={cfg.train_on!r} must list scenarios among 1, 2, 3")
    if cfg.teacher is not None and cfg.model not in STUDENTS:
        raise AcamError(f"distillation trains a student ({', '.join(STUDENTS)}), not model={cfg.model!r}")


def check_models(teachers, students) -> None:
    """Refuse model names ``reproduce`` does not know as teachers or students."""
    bad = [t for t in teachers if t not in TEACHERS] + [s for s in students if s not in STUDENTS]
    if bad:
        raise AcamError(f"unknown model(s) {bad}: teachers are {', '.join(TEACHERS)}; students are "
                        f"{', '.join(STUDENTS)}")
    if not teachers and not students:
        raise AcamError("teachers and students are both empty: nothing to train")
