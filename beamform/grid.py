"""The camera grid: one look point per acoustic pixel.

A pinhole camera sits at the array centre looking along +z.  Pixel ``(row, col)`` of a
``rows x cols`` image is the ray through the centre of that pixel; its look point is where the ray
meets the focus plane ``z = focus``.  Row 0 is the top of the image (largest y), column 0 the left
(smallest x).  The default field of view, 60 x 45 degrees, covers the sensor's 4:3 video frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.digest import digest
from ..core.errors import AcamError
from .sensor import HFOV, IMAGE_COLS, IMAGE_ROWS, VFOV


@dataclass(frozen=True)
class CameraGrid:
    """Look points of a pinhole camera at the array centre.

    Parameters
    ----------
    rows, cols : int
        Acoustic image size (the sensor's is 36 x 48).
    hfov, vfov : float
        Horizontal and vertical field of view, degrees (0 < fov < 180).
    focus : float
        Distance of the focus plane, metres (> 0).
    """

    rows: int = IMAGE_ROWS
    cols: int = IMAGE_COLS
    hfov: float = HFOV
    vfov: float = VFOV
    focus: float = 2.0
    digest: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if int(self.rows) != self.rows or int(self.cols) != self.cols or self.rows < 1 or self.cols < 1:
            raise AcamError(f"grid size {self.rows} x {self.cols} must be positive integers")
        for name in ("hfov", "vfov"):
            v = getattr(self, name)
            if not (0 < v < 180):
                raise AcamError(f"{name}={v} degrees must be between 0 and 180")
        if not (self.focus > 0 and math.isfinite(self.focus)):
            raise AcamError(f"focus={self.focus} m must be a positive distance")
        if self.focus > 1000.0:
            raise AcamError(f"focus={self.focus:g} m is more than 1000 m away")
        object.__setattr__(self, "digest", digest("CameraGrid", self.rows, self.cols, self.hfov,
                                                  self.vfov, self.focus))

    @property
    def n_pixels(self) -> int:
        return self.rows * self.cols

    def _tangents(self):
        tx = math.tan(math.radians(self.hfov) / 2)
        ty = math.tan(math.radians(self.vfov) / 2)
        u = ((np.arange(self.cols) + 0.5) / self.cols * 2 - 1) * tx   # left -> right
        v = (1 - (np.arange(self.rows) + 0.5) / self.rows * 2) * ty   # top -> bottom
        return u, v

    def look_points(self) -> np.ndarray:
        """Look points, metres.

        Returns
        -------
        np.ndarray [shape=(rows, cols, 3)]
        """
        u, v = self._tangents()
        pts = np.empty((self.rows, self.cols, 3))
        pts[..., 0] = u[None, :] * self.focus
        pts[..., 1] = v[:, None] * self.focus
        pts[..., 2] = self.focus
        return pts

    def project(self, point) -> tuple[float, float]:
        """Continuous (row, col) image coordinates of a 3-D point (pixel centres are integers)."""
        x, y, z = (float(c) for c in point)
        if z <= 0:
            raise AcamError(f"point {tuple(point)} is behind the camera (z <= 0)")
        tx = math.tan(math.radians(self.hfov) / 2)
        ty = math.tan(math.radians(self.vfov) / 2)
        col = ((x / z) / tx + 1) / 2 * self.cols - 0.5
        row = (1 - (y / z) / ty) / 2 * self.rows - 0.5
        return row, col

    def pixel_of(self, point) -> tuple[int, int]:
        """The pixel whose ray passes nearest the point's direction (its look point lies on the
        point's line of sight), clipped to the image."""
        row, col = self.project(point)
        return (int(np.clip(round(row), 0, self.rows - 1)), int(np.clip(round(col), 0, self.cols - 1)))

    def in_view(self, point) -> bool:
        """True when the point projects inside the image."""
        row, col = self.project(point)
        return -0.5 <= row < self.rows - 0.5 and -0.5 <= col < self.cols - 0.5
