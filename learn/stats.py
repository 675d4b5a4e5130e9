"""Intervals over test sequences.

Windows of one sequence are not independent (same subject, same position, same background), so a
95% interval on a window accuracy has to resample *sequences*, not windows:

- :func:`bootstrap_interval`: percentile bootstrap over sequences of the window accuracy; each
  resample draws sequences with replacement and keeps all their windows (with several seeds,
  their counts are pooled per sequence, so the interval is about the test set, the seeds' spread is
  reported beside it).
- :func:`paired_bootstrap_interval`: the same for the *difference* of two models' accuracies on
  the same test sequences (one resample of sequences serves both), the interval a claim "A beats
  B" needs: two separate intervals overlap long before the paired one reaches zero.
- :func:`wilson_interval`: Wilson's score interval for a proportion, used on sequence-level votes
  (:func:`sequence_votes`: a sequence is right when its true class gets more windows than any
  other class).
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials; (nan, nan) for ``n == 0``."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(correct, total, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``sum(correct) / sum(total)`` resampling sequences.

    Parameters
    ----------
    correct, total : array [shape=(n_sequences,)]
        Correct and counted windows per sequence (pooled over seeds).
    """
    c = np.asarray(correct, float)
    t = np.asarray(total, float)
    if len(c) == 0 or t.sum() == 0:
        return (float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, len(c), (n_boot, len(c)))
    acc = c[idx].sum(1) / np.maximum(t[idx].sum(1), 1e-12)
    lo, hi = np.quantile(acc, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


def paired_bootstrap_interval(correct_a, total_a, correct_b, total_b, n_boot: int = 2000,
                              level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``acc(a) - acc(b)`` resampling the sequences both were tested
    on (the arrays are aligned by sequence); each accuracy is ``sum(correct) / sum(total)``."""
    ca, ta, cb, tb = (np.asarray(x, float) for x in (correct_a, total_a, correct_b, total_b))
    if not (len(ca) == len(ta) == len(cb) == len(tb)):
        raise ValueError("the two models' counts must be aligned by sequence")
    if len(ca) == 0 or ta.sum() == 0 or tb.sum() == 0:
        return (float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, len(ca), (n_boot, len(ca)))
    diff = (ca[idx].sum(1) / np.maximum(ta[idx].sum(1), 1e-12)
            - cb[idx].sum(1) / np.maximum(tb[idx].sum(1), 1e-12))
    lo, hi = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


def sequence_votes(labels, preds, sequences) -> tuple[int, int]:
    """``(right, n)``: sequences whose true class gets strictly more windows than any other class."""
    by: dict = {}
    for y, p, s in zip(labels, preds, sequences):
        by.setdefault(s, (int(y), []))[1].append(int(p))
    right = 0
    for y, ps in by.values():
        counts = np.bincount(ps, minlength=max(ps + [y]) + 1)
        others = np.delete(counts, y)
        right += int(counts[y] > (others.max() if len(others) else 0))
    return right, len(by)
