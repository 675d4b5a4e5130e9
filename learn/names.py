"""Names shown to readers: scenarios, models, supervision, training sets."""

from __future__ import annotations

from acam.dataset.scenarios import SCENARIO_NAMES      # the one map of scenario names

# the registry names of the models (acam.learn.models.REGISTRY), typed here once: this module needs
# no PyTorch, so the command line can offer them without importing it
TEACHERS = ("dualcamnet", "resnet50", "temporal_resnet50", "avnet")
STUDENTS = ("hearnet", "soundnet")
MODELS = TEACHERS + STUDENTS
DISTILL_FROM = ("dualcamnet", "resnet50")          # the teachers the paper distils from (columns D, R)
MODEL_NAMES = {"dualcamnet": "DualCamNet", "resnet50": "ResNet-50", "temporal_resnet50": "Temporal ResNet-50",
               "avnet": "AVNet", "hearnet": "HearNet", "soundnet": "SoundNet-5"}
TAGS = {"dualcamnet": "D", "resnet50": "R", "temporal_resnet50": "T", "avnet": "AV"}   # teacher columns
CONTROLS = {"mfcc_mono": "mono", "spectrogram_beam": "oracle"}      # control inputs -> their name
CHANCE = 1 / 14


def scenario(key) -> str:
    """``1`` -> ``anechoic (1)``; ``all`` -> ``all scenarios``."""
    if str(key) == "all":
        return "all scenarios"
    return f"{SCENARIO_NAMES.get(int(key), key)} ({int(key)})"


def train_set(train_on) -> str:
    sc = sorted(int(s) for s in train_on)
    return "all scenarios" if sc == [1, 2, 3] else " + ".join(scenario(s) for s in sc)


def model(name: str) -> str:
    return MODEL_NAMES.get(name, name)


def supervision_label(sup: str, inputs: str | None = None) -> str:
    """``G`` -> ``G (labels)``, ``D`` -> ``D (distilled from DualCamNet)``, controls by name."""
    if inputs in CONTROLS:
        return f"{CONTROLS[inputs]} control"
    if sup == "G":
        return "G (labels)"
    teacher = {v: k for k, v in TAGS.items()}.get(sup)
    return f"{sup} (distilled from {MODEL_NAMES[teacher]})" if teacher else "teacher"
