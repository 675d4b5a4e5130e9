"""Acoustic video: the heat map over each video frame, with a time stamp (``beamform show --animate``).

Frames are streamed: the cube is read one frame at a time (a first pass finds the recording's peak,
so every frame shares one colour scale), each picture is drawn into the same figure, encoded and
written before the next is read, so memory stays flat however long the recording.

- ``.gif``: written by :class:`GifStream` (Pillow encodes each frame, with its own 256-colour
  palette; the frames are appended to the file one by one - Pillow's own multi-frame writer would
  hold every frame until the end).
- ``.mp4``: H.264 through the ffmpeg executable that the ``video`` extra brings
  (``pip install 'acam[video]'``: imageio-ffmpeg, which ships ffmpeg inside its wheel).
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np

from ..core.errors import AcamError
from ..core.progress import progress_bar
from ..core.safeio import reads_inputs
from .io import Cube, atomic_output
from .plot import (DISPLAY_BAND, HeatMapFigure, Scale, View, find_peak, frame_title, video_frame,
                   video_reader)

FORMATS = (".gif", ".mp4")


class GifStream:
    """An animated GIF written frame by frame (flat memory), looping forever.

    Frame ``i`` is shown until ``round((i + 1) * 100 / fps)`` hundredths of a second, so the
    animation keeps time over its length although GIF delays are whole hundredths.
    """

    def __init__(self, path, width: int, height: int, fps: float):
        if not fps > 0:
            raise AcamError(f"fps={fps} must be positive")
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.n = 0
        self.file = open(path, "wb")
        self.file.write(b"GIF89a" + struct.pack("<HHBBB", self.width, self.height, 0x70, 0, 0))
        self.file.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", 0) + b"\x00")   # loop forever

    def add(self, rgb: np.ndarray) -> None:
        from PIL import Image

        if rgb.shape != (self.height, self.width, 3):
            raise AcamError(f"frame of shape {rgb.shape} does not fit the {self.width} x {self.height} animation")
        rgb_img = Image.fromarray(np.ascontiguousarray(rgb, np.uint8), "RGB")
        palette_img = rgb_img.quantize(256, method=Image.Quantize.FASTOCTREE)
        img = rgb_img.quantize(palette=palette_img, dither=Image.Dither.FLOYDSTEINBERG)
        buf = io.BytesIO()
        img.save(buf, format="GIF")
        palette, image = _single_frame(buf.getvalue())
        delay = round((self.n + 1) * 100 / self.fps) - round(self.n * 100 / self.fps)
        # graphic control: disposal 1 (leave in place), delay in 1/100 s, no transparency
        self.file.write(b"\x21\xf9\x04\x04" + struct.pack("<H", max(delay, 1)) + b"\x00\x00")
        left, top, w, h, packed = struct.unpack("<HHHHB", image[1:10])
        bits = max(1, (len(palette) // 3 - 1).bit_length()) - 1          # table of 2**(bits+1) colours
        self.file.write(b"\x2c" + struct.pack("<HHHHB", left, top, w, h, 0x80 | (packed & 0x40) | bits))
        self.file.write(palette + image[10:])
        self.n += 1

    def close(self) -> None:
        if not self.file.closed:
            self.file.write(b"\x3b")
            self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _single_frame(data: bytes) -> tuple[bytes, bytes]:
    """Split a one-frame GIF into its colour table (padded to a power of two) and its image block
    (descriptor without colour table, then the LZW data, up to the trailer)."""
    if data[:3] != b"GIF":
        raise AcamError("the GIF encoder wrote no GIF")
    packed = data[10]
    pos = 13
    palette = b""
    if packed & 0x80:
        n = 3 * 2 ** ((packed & 7) + 1)
        palette, pos = data[pos:pos + n], pos + n
    while pos < len(data):
        kind = data[pos]
        if kind == 0x21:                      # extension: label, then sub-blocks
            pos += 2
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
        elif kind == 0x2C:                    # image descriptor
            p = data[pos + 9]
            start = pos
            pos += 10
            if p & 0x80:                      # a local colour table replaces the global one
                n = 3 * 2 ** ((p & 7) + 1)
                palette, pos = data[pos:pos + n], pos + n
            block_start = pos
            pos += 1                          # LZW minimum code size
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
            descriptor = data[start:start + 10]
            return _pad_palette(palette), descriptor + data[block_start:pos]
        else:
            break
    raise AcamError("the GIF encoder wrote no image")


def _pad_palette(palette: bytes) -> bytes:
    n = max(2, len(palette) // 3)
    size = 1 << (n - 1).bit_length()
    return palette + b"\x00" * (3 * size - len(palette))


class Mp4Stream:
    """An H.264 MP4 written frame by frame through imageio-ffmpeg's ffmpeg (the ``video`` extra)."""

    def __init__(self, path, width: int, height: int, fps: float):
        try:
            import imageio_ffmpeg
        except ImportError:
            raise AcamError("MP4 output needs the 'video' extra (an ffmpeg build from PyPI): "
                            "pip install 'acam[video]', or write a .gif") from None
        if width % 2 or height % 2:
            raise AcamError(f"MP4 frames need even sizes, not {width} x {height}")
        self.n = 0
        self._gen = imageio_ffmpeg.write_frames(os.fspath(path), (int(width), int(height)), fps=float(fps),
                                                codec="libx264", pix_fmt_out="yuv420p", macro_block_size=1,
                                                quality=7, output_params=["-f", "mp4"],
                                                ffmpeg_log_level="error")
        self._gen.send(None)

    def add(self, rgb: np.ndarray) -> None:
        self._gen.send(np.ascontiguousarray(rgb, np.uint8).tobytes())
        self.n += 1

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None


WRITERS = {".gif": GifStream, ".mp4": Mp4Stream}


def _writer_for(out_path):
    ext = os.path.splitext(os.fspath(out_path))[1].lower()
    if ext not in WRITERS:
        raise AcamError(f"animation {os.fspath(out_path)!r}: the name must end in {' or '.join(FORMATS)}")
    return WRITERS[ext]


def recording_peak(cube: Cube, band) -> float:
    """The largest band energy of any pixel in any frame (one frame in memory at a time)."""
    top = 0.0
    for t in range(cube.cube.shape[0]):
        e = cube.band_energy(band, [t])
        if not np.all(np.isfinite(e)):
            raise AcamError(f"{cube.path}: frame {t} holds NaN or infinite values")
        top = max(top, float(e.max()))
    return top


@reads_inputs
def animate_cube(cube_path, out_path, band=DISPLAY_BAND, dynamic_range: float = 15.0, video: str | None = None,
                 absolute: bool = False, fps: float | None = None, dpi: int = 100, progress: bool = False) -> dict:
    """Write the acoustic video of a cube: one picture per cube frame, over the matching video frame.

    The colour scale is dB re the recording's peak (or dB SPL with ``absolute``), the same for every
    frame, so quiet frames look quiet.  ``fps`` defaults to the cube's frame rate (real time).

    Returns
    -------
    dict with ``frames``, ``width``, ``height`` (pixels), ``fps`` and ``path``.
    """
    writer_cls = _writer_for(out_path)
    with Cube.open(cube_path) as cube:
        view = View.of(cube)
        fps = view.frame_rate if fps is None else float(fps)
        if not fps > 0:
            raise AcamError(f"fps={fps} must be positive")
        peak_power = recording_peak(cube, band)
        scale = Scale.make(peak_power, dynamic_range, absolute, view.unit)
        vid, vf = video_reader(cube, video)
        hm = HeatMapFigure(view, scale, band, vid is not None, dynamic_range, dpi)
        w_px, h_px = (int(round(v / 16)) * 16 for v in hm.fig.get_size_inches() * dpi)
        hm.fig.set_size_inches(w_px / dpi, h_px / dpi)
        bar = progress_bar(view.n_frames, progress, os.path.basename(os.fspath(out_path)), "frame")
        try:
            with atomic_output(out_path, protect=(os.fspath(cube_path),)) as tmp:
                writer = writer_cls(tmp, w_px, h_px, fps)
                try:
                    for t in range(view.n_frames):
                        energy = cube.band_energy(band, [t])[0]
                        peak = find_peak(energy, view.grid, view.unit)
                        hm.update(energy, video_frame(vid, t), peak, view.truth_at(t),
                                  frame_title(view, band, t, peak),
                                  f"t = {t / view.frame_rate:.2f} s  (frame {t + 1} of {view.n_frames})")
                        if t == 0:
                            hm.rgb()
                            hm.fig.set_layout_engine("none")     # freeze the layout: frames never jump
                        writer.add(hm.rgb())
                        bar.update(1)
                finally:
                    writer.close()
        finally:
            bar.close()
            hm.close()
            if vf is not None:
                vf.close()
    return {"frames": view.n_frames, "width": w_px, "height": h_px, "fps": fps, "path": os.fspath(out_path)}
