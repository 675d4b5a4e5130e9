"""``acam dataset mfcc``: a cube file -> an MFCC cube file, streamed in blocks of frames."""

from __future__ import annotations

import os

import numpy as np

from acam.beamform import backend
from acam.beamform.io import Cube, atomic_output
from acam.core.errors import FormatError
from acam.core.safeio import h5_output, reads_inputs, reserve

from .mfcc import LAB_RATE, cube_mfcc_settings, mfcc


@reads_inputs
def mfcc_file(cube_path, out_path, units: str = "lab", assumed_rate: float | None = LAB_RATE,
              device: str = "auto", block: int = 64) -> int:
    """Write ``mfcc`` (n_frames, rows, cols, 12) float32 with the cube's other datasets and
    attributes; returns the number of frames.

    A cube holding NaN or infinite power is refused (naming the first frame of the block): the MFCC
    recipe would turn it into zeros that look like silence."""
    xp = backend.xp_for(backend.resolve_device(device))
    with Cube.open(cube_path) as cube:
        cube.require("nfft", "sample_freq")
        bin_hz, factor = cube_mfcc_settings(cube.attrs, units, assumed_rate)
        n, rows, cols, _ = cube.cube.shape
        with atomic_output(out_path, protect=(os.fspath(cube_path),)) as tmp, h5_output(tmp) as f:
            reserve(f, n * rows * cols * 12 * 4 + (1 << 20), out_path)
            out = f.create_dataset("mfcc", (n, rows, cols, 12), "float32")
            for name in ("frequencies", "look_points", "source_positions", "mic_positions"):
                if name in cube.file:
                    f.create_dataset(name, data=cube.file[name][()])
            f.attrs.update(cube.attrs)
            f.attrs.update({"mfcc_units": units, "mfcc_bin_hz": bin_hz,
                            "source_cube": os.path.abspath(os.fspath(cube_path))})
            for b0 in range(0, n, block):
                x = xp.asarray(cube.cube[b0:b0 + block])
                with np.errstate(invalid="ignore", over="ignore"):
                    y = mfcc(x, bin_hz, factor, nonfinite=None)  # NaN/inf power -> NaN/inf coefficients
                if not bool(xp.isfinite(y).all()):               # checked on 12 values per pixel, not 512
                    raise FormatError(f"{cube_path}: the cube holds NaN or infinite values (frames {b0}.."
                                      f"{b0 + x.shape[0] - 1}); refusing to turn them into MFCC zeros")
                out[b0:b0 + x.shape[0]] = backend.to_host(y)
    return n
