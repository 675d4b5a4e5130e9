"""Transfer: features from a student layer, judged by k-NN and a linear SVM on another labelled audio
collection (the paper used DCASE-2018).

The data is any folder of labelled audio files: one sub-folder per class (``DIR/<class>/*.wav``) or
a CSV ``file,label[,split]`` (paths relative to the CSV).  Files are read at the training
recordings' rate (12 288 Hz), cut into crops of the student's input length and put through the
training preprocessing (peak-normalised, resampled to 22 050 Hz, x 256; HearNet then applies its
training set's min-max statistics); a crop's feature is the layer's output averaged over time;
a file's feature is the mean over its crops.  Without a split column, files are split 60/20/20 into
train/val/test with a seed.  k-NN takes the odd k in 7..15 (capped by the training size) that is best
on the validation files; the linear SVM (scikit-learn's ``LinearSVC``) is trained on train + val.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import torch

from acam.beamform.sensor import SAMPLE_FREQ
from acam.core.checks import number
from acam.core.errors import AcamError

from .data import hearnet_spectrogram, student_waveform
from .models import STUDENTS
from .train import load_run

AUDIO_EXT = (".wav",)


def list_labelled(path: str) -> list[tuple[str, str, str | None]]:
    """``(file, label, split or None)`` for a class-per-folder tree or a CSV."""
    path = os.fspath(path)
    if os.path.isfile(path) and path.endswith(".csv"):
        import io

        from acam.core.safeio import read_bytes

        base = os.path.dirname(os.path.abspath(path))
        try:
            text = read_bytes(path, "CSV file", 64 << 20).decode("utf-8")
            rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r and not r[0].startswith("#")]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise AcamError(f"{path}: not a CSV file of file,label[,split] ({str(exc).splitlines()[0]})") from None
        if rows and rows[0][:2] == ["file", "label"]:
            rows = rows[1:]
        bad = next((i for i, r in enumerate(rows) if len(r) < 2 or not r[1].strip()), None)
        if bad is not None or not rows:
            raise AcamError(f"{path}: " + (f"row {bad + 1} has no label (expected file,label[,split])"
                                           if bad is not None else "lists no files"))
        odd = next((r[2] for r in rows if len(r) > 2 and r[2] not in ("train", "val", "test")), None)
        if odd is not None:
            raise AcamError(f"{path}: split {odd!r} is not one of train, val, test")
        return [(os.path.join(base, r[0]), r[1], r[2] if len(r) > 2 else None) for r in rows]
    if not os.path.isdir(path):
        raise AcamError(f"{path!r} is neither a folder of class folders nor a CSV file")
    out = []
    for label in sorted(os.listdir(path)):
        d = os.path.join(path, label)
        if os.path.isdir(d):
            out += [(os.path.join(d, n), label, None) for n in sorted(os.listdir(d)) if n.lower().endswith(AUDIO_EXT)]
    if not out:
        raise AcamError(f"no labelled audio files (DIR/<class>/*.wav) under {path!r}")
    return out


def _read_audio(path: str, rate: float) -> np.ndarray:
    from acam.beamform.simulate import load_wav

    return load_wav(path, rate)


@torch.no_grad()
def file_features(model, path: str, layer: str, seconds: float = 5.0, rate: float = SAMPLE_FREQ) -> np.ndarray:
    """A file's feature: read at the training recordings' ``rate``, cut into crops of ``seconds``,
    each through the training preprocessing (:func:`.data.student_waveform`: so the band above
    ``rate / 2``, empty in training and scaled by HearNet's min-max statistics into huge values,
    stays empty here too), the layer's output averaged over time, then over crops."""
    x = _read_audio(path, rate)
    n = int(round(seconds * rate))
    crops = [x[i:i + n] for i in range(0, max(1, len(x) - n + 1), n)] or [x]
    feats = []
    for c in crops:
        w = student_waveform(np.pad(c, (0, max(0, n - len(c)))), rate, seconds)
        inp = torch.from_numpy(hearnet_spectrogram(w) if model.modality == "spectrogram" else w)[None]
        out = model.layers(inp)
        if layer not in out:
            raise AcamError(f"layer {layer!r} is not one of {', '.join(out)}")
        f = out[layer]
        feats.append((f.mean(-1) if f.dim() == 3 else f)[0].numpy())
    return np.mean(feats, 0)


def knn_k(k: int, n_train: int) -> int:
    """The k-NN's k: ``k`` capped by the training files, kept odd so that two classes cannot tie."""
    k = max(1, min(k, n_train))
    return k if k % 2 else k - 1


def transfer(run_dir: str, data: str, layer: str = "conv3", seed: int = 0, seconds: float = 5.0) -> dict:
    """k-NN and linear-SVM accuracy of a student layer's features on a labelled audio collection."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    number("seconds", seconds, lo=0, lo_open=True, hi=600)
    model, ck = load_run(run_dir)
    if ck["train_config"]["model"] not in STUDENTS:
        raise AcamError(f"{run_dir!r} is a {ck['train_config']['model']} run; transfer takes a student")
    items = list_labelled(data)
    rate = float(ck.get("sample_freq", SAMPLE_FREQ))
    X = np.stack([file_features(model, f, layer, seconds, rate) for f, _, _ in items])
    labels = sorted({lab for _, lab, _ in items})
    y = np.array([labels.index(lab) for _, lab, _ in items])
    split = np.array([s for _, _, s in items], dtype=object)
    if any(s is None for s in split):
        order = np.random.default_rng(seed).permutation(len(items))
        split = np.empty(len(items), dtype=object)
        n_tr, n_va = int(0.6 * len(items)), int(0.2 * len(items))
        split[order[:n_tr]], split[order[n_tr:n_tr + n_va]], split[order[n_tr + n_va:]] = "train", "val", "test"
    tr, va, te = (split == "train"), (split == "val"), (split == "test")
    if not tr.any() or not te.any():
        raise AcamError(f"{data!r}: too few files for train and test splits ({len(items)} files)")
    if len(labels) < 2 or len(set(y[tr].tolist())) < 2:
        raise AcamError(f"{data!r}: {len(set(y[tr].tolist()))} class(es) among the training files "
                        f"({', '.join(labels[:3])}); a classifier needs at least 2")
    scaler = StandardScaler().fit(X[tr])
    best_k, best = None, -1.0
    for k in range(7, 16, 2):
        k_eff = knn_k(k, int(tr.sum()))
        knn = KNeighborsClassifier(k_eff).fit(scaler.transform(X[tr]), y[tr])
        acc = knn.score(scaler.transform(X[va]), y[va]) if va.any() else 0.0
        if acc > best:
            best, best_k = acc, k_eff
    knn = KNeighborsClassifier(best_k).fit(scaler.transform(X[tr]), y[tr])
    fit_idx = tr | va
    svm = make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=20000)).fit(X[fit_idx], y[fit_idx])
    return {"layer": layer, "files": len(items), "classes": labels, "k": int(best_k),
            "knn_val_acc": float(best), "knn_test_acc": float(knn.score(scaler.transform(X[te]), y[te])),
            "svm_test_acc": float(svm.score(X[te], y[te]))}
