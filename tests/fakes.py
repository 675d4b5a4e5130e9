"""Small stand-ins that need no simulation or training, shared by the hostile tests and the
hostile harness: a dataset of random MFCC frames and a run folder holding an untrained checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from acam.beamform.sensor import FRAME_RATE, SAMPLE_FREQ, SAMPLES_PER_FRAME


def fake_dataset(folder: Path, grid=(36, 48, 12), n_frames: int = 12, fill=None) -> Path:
    """14 short sequences of random MFCC frames (``fill``: one value everywhere instead): enough to
    load, train and evaluate."""
    from acam.dataset.store import assign_splits, sequence_name, split_record, write_manifest

    os.makedirs(folder / "sequences", exist_ok=True)
    rng = np.random.default_rng(0)
    names = [sequence_name(a, 1, 0, 0) for a in range(14)]
    splits = assign_splits([{"name": n, "scenario": 1, "action": a} for a, n in enumerate(names)])
    seqs = []
    for a, name in enumerate(names):
        mfcc = rng.standard_normal((n_frames,) + tuple(grid)).astype(np.float32)
        if fill is not None:
            mfcc[:] = fill
        with h5py.File(folder / "sequences" / f"{name}.h5", "w") as f:
            f.create_dataset("mfcc", data=mfcc)
            f.create_dataset("video", data=np.zeros((n_frames, 8, 8, 3), np.uint8))
            f.create_dataset("mono", data=rng.standard_normal(n_frames * SAMPLES_PER_FRAME).astype(np.float32))
            f.attrs.update({"action": a, "scenario": 1, "subject": 0, "frame_len": SAMPLES_PER_FRAME})
        seqs.append({"name": name, "file": f"sequences/{name}.h5", "action": a, "scenario": 1, "subject": 0,
                     "repetition": 0, "n_frames": n_frames, "split": splits[name]})
    write_manifest(str(folder), {"kind": "acam-dataset", "sample_freq": SAMPLE_FREQ, "frame_rate": FRAME_RATE,
                                 "splits": split_record(), "sequences": seqs})
    return folder


def fake_run(folder: Path, data: Path, model: str = "dualcamnet", n_classes: int = 14) -> Path:
    """A run folder whose best.pt is an untrained model's checkpoint (no training needed)."""
    from dataclasses import asdict

    import torch

    from acam.learn.checkpoint import save_checkpoint
    from acam.learn.models import ModelConfig, build_model
    from acam.learn.train import TrainConfig

    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    mc = ModelConfig(model, n_classes)
    save_checkpoint({"model_config": mc.as_dict(), "model": build_model(mc).state_dict(),
                     "train_config": asdict(TrainConfig(model=model, data=str(data))), "mfcc_stats": None,
                     "epoch": 0, "history": [], "val_acc": 0.0}, os.path.join(folder, "best.pt"))
    return folder
