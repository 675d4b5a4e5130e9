"""The other heavy steps of the pipeline: MFCC compression, building one dataset sequence, a
training step of each network, and distillation with cached against live teacher soft labels."""

from __future__ import annotations

import time

import numpy as np
from acam.beamform.sensor import SAMPLE_FREQ


def mfcc_per_frame(repeats: int = 3, frames: int = 64, smoke: bool = False) -> dict:
    from acam.dataset.mfcc import mfcc

    from .measure import timed

    shape = (4 if smoke else frames, 36, 48, 512)
    cube = np.random.default_rng(0).random(shape, np.float32)
    t = timed(lambda: mfcc(cube), repeats)
    return {"seconds_per_frame": float(np.median(t)) / shape[0], "samples": list(t), "frames": shape[0]}


def dataset_sequence(preset: str = "tiny") -> dict:
    """Seconds to build one sequence of each scenario of a preset (simulation included)."""
    import tempfile

    from acam.beamform import Beamformer, CameraGrid, SteeringSpec, default_array
    from acam.dataset.build import FRAME_RATE, N_BINS, PRESETS, WINDOW, build_sequence, plan

    p = PRESETS[preset]
    m = plan(p, 0)
    bf = Beamformer(SteeringSpec(default_array(), CameraGrid(), SAMPLE_FREQ, N_BINS), FRAME_RATE, WINDOW, "auto")
    bf.steering
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for sc in (1, 2, 3):
            s = [x for x in m["sequences"] if x["scenario"] == sc][0]
            t0 = time.perf_counter()
            build_sequence(f"{tmp}/{s['name']}.h5", s, p, bf, 0, None, False)
            out[f"scenario_{sc}"] = time.perf_counter() - t0
    out["seconds_of_audio"] = p.duration
    return out


def training_steps(batch: int = 8, repeats: int = 3, smoke: bool = False) -> dict:
    """Seconds per training step (forward, backward, Adam) of each network on random tensors of the
    dataset's shapes; video at 96 x 128 (the small preset).  ``epoch_estimate_s`` scales the step to
    an epoch of each preset's training split (step time per sample x training crops; loading the
    crops and validating are not included - measured epochs are in each run's ``log.csv``)."""
    import torch

    from acam.learn.models import ModelConfig, build_model

    torch.manual_seed(0)
    b = 2 if smoke else batch
    inputs = {
        "dualcamnet": lambda: torch.randn(b, 12, 36, 48, 12),
        "hearnet": lambda: torch.randn(b, 500, 257),
        "soundnet": lambda: torch.randn(b, 110250),
        "resnet50": lambda: torch.rand(b, 2 if smoke else 12, 3, 96, 128),
    }
    out = {}
    for name, make in inputs.items():
        model = build_model(ModelConfig(name))
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        x, y = make(), torch.randint(0, 14, (b,))

        def step():
            logits = model(x)
            logits = logits.mean(1) if logits.dim() == 3 else logits
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()
        ts = []
        for _ in range(1 if smoke else repeats):
            t0 = time.perf_counter()
            step()
            ts.append(time.perf_counter() - t0)
        out[name] = {"batch": b, "seconds_per_step": float(np.median(ts)), "samples": ts}
        out[name]["epoch_estimate_s"] = {
            preset: n * out[name]["seconds_per_step"] / b for preset, n in train_crops(name).items()}
    return out


def train_crops(model: str) -> dict:
    """Training crops per epoch with the paper's crops (teachers 30 x 1 s, students 6 x 5 s per
    sequence) on the training split of each preset."""
    from acam.dataset.build import PRESETS, plan
    from acam.learn.models import STUDENTS
    from acam.learn.train import CROPS

    per_seq = CROPS["student" if model in STUDENTS else "teacher"][1]
    return {name: per_seq * sum(s["split"] == "train" for s in plan(p, 0)["sequences"])
            for name, p in PRESETS.items()}


def distillation_cached_vs_live(batch: int = 8, repeats: int = 3, smoke: bool = False) -> dict:
    """A HearNet distillation step with the DualCamNet teacher's soft labels read from the cache
    against running the teacher on the crop's 60 MFCC frames in every step."""
    import torch

    from acam.learn.losses import distillation_loss
    from acam.learn.models import DualCamNet, HearNet

    torch.manual_seed(0)
    b = 2 if smoke else batch
    student, teacher = HearNet(), DualCamNet().eval()
    opt = torch.optim.Adam(student.parameters(), 1e-4)
    spec, y = torch.randn(b, 500, 257), torch.randint(0, 14, (b,))
    mfcc = torch.randn(b, 12 if smoke else 60, 36, 48, 12)
    cached = torch.randn(b, 14)

    def step(live: bool):
        if live:
            with torch.no_grad():
                soft = teacher(mfcc).mean(1)
        else:
            soft = cached
        loss = distillation_loss(student(spec), y, soft)
        opt.zero_grad()
        loss.backward()
        opt.step()

    res = {}
    for mode in ("cached", "live"):
        step(mode == "live")
        ts = []
        for _ in range(1 if smoke else repeats):
            t0 = time.perf_counter()
            step(mode == "live")
            ts.append(time.perf_counter() - t0)
        res[mode] = float(np.median(ts))
    res["speedup"] = res["live"] / res["cached"]
    return res
