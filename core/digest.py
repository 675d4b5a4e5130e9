"""Stable digests of settings objects (keys for caches, attributes in output files)."""

from __future__ import annotations

import hashlib
import json

import numpy as np


def digest(*parts) -> str:
    """A 16-hex-digit SHA-256 digest of numbers, strings and arrays, stable across runs."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(str(arr.dtype).encode() + str(arr.shape).encode())
            h.update(arr.tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"|")
    return h.hexdigest()[:16]
