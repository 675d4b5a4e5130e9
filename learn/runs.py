"""The configuration of one training run from what a user asks for: :func:`train_config` (a teacher
or a student on labels) and :func:`distill_config` (a student from a teacher's run folder).

Defaults a user may leave out are filled in here, once, for every front end: the learning rate
from the paper's Table 5 (:func:`acam.learn.reproduce.default_lr`), the dataset of a distillation
from its teacher's run.  Settings outside their range raise
:class:`~acam.core.errors.ParameterError` naming the parameter.
"""

from __future__ import annotations

import os

from acam.core.errors import ParameterError

from .reproduce import default_lr
from .train import TrainConfig, load_run


def train_config(*, model: str, data: str, train_on, lr: float | None = None, **settings) -> TrainConfig:
    """A run of ``model`` on ``data``'s scenarios ``train_on``; ``lr`` None takes the paper's rate
    (0 is refused later, not defaulted).  ``settings`` are further :class:`TrainConfig` fields."""
    if lr is None:
        lr = default_lr(model, train_on)
    return TrainConfig(model=model, data=data, train_on=list(train_on), lr=lr, **settings)


def check_distillation(lam: float, temperature: float) -> None:
    """The distillation loss's weight ``lam`` lies in [0, 1] and its ``temperature`` is positive."""
    if not 0 <= lam <= 1:
        raise ParameterError("lam", lam, "must lie in [0, 1]")
    if temperature <= 0:
        raise ParameterError("temperature", temperature, "must be positive")


def distill_config(*, student: str, teacher: str, train_on, data: str | None = None, lr: float | None = None,
                   lam: float = 0.5, temperature: float = 1.0, **settings) -> TrainConfig:
    """A run of ``student`` distilled from the run folder ``teacher`` (its ``best.pt``); ``data``
    None takes the teacher's dataset, ``lr`` None the paper's rate for this student and teacher."""
    check_distillation(lam, temperature)
    _, ck = load_run(teacher)
    teacher_cfg = ck["train_config"]
    data = data or teacher_cfg["data"]
    if lr is None:
        lr = default_lr(student, train_on, teacher_cfg["model"])
    return TrainConfig(model=student, data=data, train_on=list(train_on), lr=lr, teacher=os.path.abspath(teacher),
                       lam=lam, temperature=temperature, **settings)
