"""Microphone-array geometries: the frozen :class:`ArrayGeometry`, its file formats and layouts.

Coordinates are metres in the camera/array frame: origin at the array centre, x to the right, y up,
z forward into the scene (as seen from behind the camera).  A planar array lies in z = 0.

File formats read and written by :meth:`ArrayGeometry.from_file` / :meth:`ArrayGeometry.save`:

``.xml``  Acoular's microphone-geometry XML (``<MicArray name=..><pos Name="Point 1" x= y= z=/>``),
          so Acoular's shipped arrays load here and ours load in Acoular.
``.csv``  one microphone per line, ``x,y,z`` (a header line ``x,y,z`` is allowed).
``.npy``  an ``(n_mics, 3)`` float array.
``.h5``   the ``mic_positions`` dataset of a raw recording.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from ..core.digest import digest
from ..core.errors import AcamError, FormatError

DEFAULT_ARRAY_FILE = "acam128.xml"


@dataclass(frozen=True, eq=False)
class ArrayGeometry:
    """Positions of the microphones of an array.

    Parameters
    ----------
    positions : np.ndarray [shape=(n_mics, 3)]
        Metres, in the camera/array frame.
    name : str
        A label written into files and plots.
    """

    positions: np.ndarray
    name: str = "array"
    digest: str = field(init=False, repr=False)

    def __post_init__(self):
        pos = np.array(self.positions, dtype=np.float64, copy=True)
        if pos.ndim == 2 and pos.shape[1] == 2:  # planar layouts may omit z
            pos = np.column_stack([pos, np.zeros(len(pos))])
        if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 1:
            raise FormatError(f"microphone positions have shape {pos.shape}; expected (n_mics, 3)")
        if not np.all(np.isfinite(pos)):
            raise FormatError("microphone positions contain NaN or infinite values")
        pos.setflags(write=False)
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "digest", digest("ArrayGeometry", pos))

    @property
    def n_mics(self) -> int:
        return self.positions.shape[0]

    @property
    def aperture(self) -> float:
        """Largest distance between two microphones, metres."""
        d = self.positions[:, None, :] - self.positions[None, :, :]
        return float(np.sqrt((d ** 2).sum(-1)).max())

    @property
    def min_spacing(self) -> float:
        """Smallest distance between two microphones, metres (inf for one microphone)."""
        if self.n_mics < 2:
            return float("inf")
        d = np.sqrt(((self.positions[:, None, :] - self.positions[None, :, :]) ** 2).sum(-1))
        d[np.diag_indices_from(d)] = np.inf
        return float(d.min())

    # ------------------------------------------------------------------------------------ files
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ArrayGeometry":
        """Load a geometry from ``.xml`` (Acoular), ``.csv``, ``.npy`` or ``.h5`` (raw recording)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise AcamError(f"array file {path!r} does not exist")
        ext = os.path.splitext(path)[1].lower()
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            if ext == ".xml":
                root = ET.parse(path).getroot()
                pts = [[float(p.get(a, 0.0)) for a in ("x", "y", "z")] for p in root.iter("pos")]
                return cls(np.array(pts).reshape(-1, 3), root.get("name", name))
            if ext == ".csv":
                with open(path, encoding="utf-8") as fh:
                    rows = [ln for ln in fh.read().splitlines() if ln.strip()]
                if rows and not rows[0].lstrip().lstrip("-")[:1].isdigit():
                    rows = rows[1:]
                pts = [[float(v) for v in ln.split(",")] for ln in rows]
                return cls(np.array(pts), name)
            if ext == ".npy":
                return cls(np.load(path, allow_pickle=False), name)
            if ext in (".h5", ".hdf5"):
                import h5py

                with h5py.File(path, "r") as f:
                    if "mic_positions" not in f:
                        raise FormatError(f"{path}: no 'mic_positions' dataset")
                    return cls(f["mic_positions"][()], name)
        except (ET.ParseError, ValueError, OSError) as exc:
            raise FormatError(f"cannot read array file {path!r}: {exc}") from None
        raise AcamError(f"array file {path!r}: unknown extension {ext!r} (use .xml, .csv, .npy, .h5)")

    def save(self, path: str | os.PathLike) -> None:
        """Write the geometry as ``.xml`` (Acoular's format), ``.csv`` or ``.npy``."""
        path = os.fspath(path)
        ext = os.path.splitext(path)[1].lower()
        if ext == ".xml":
            lines = ['<?xml version="1.1" encoding="utf-8"?>', f'<MicArray name="{self.name}">']
            lines += [f'  <pos Name="Point {i + 1}" x="{x:.6f}" y="{y:.6f}" z="{z:.6f}"/>'
                      for i, (x, y, z) in enumerate(self.positions)]
            lines.append("</MicArray>")
            text = "\n".join(lines) + "\n"
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        elif ext == ".csv":
            np.savetxt(path, self.positions, delimiter=",", header="x,y,z", comments="", fmt="%.6f")
        elif ext == ".npy":
            np.save(path, self.positions)
        else:
            raise AcamError(f"cannot write array file {path!r}: use .xml, .csv or .npy")


@functools.lru_cache(maxsize=1)
def default_array() -> ArrayGeometry:
    """The project's default 128-microphone layout in a 0.45 m square (shipped file).

    The sensor's real positions are unpublished ("an optimised aperiodic layout"); this one was
    made by ``beamform geometry make optimised --mics 128 --aperture 0.45 --band 500:6000 --seed 0``
    (:func:`beamform.design.optimise`, 20 000 moves, 25 mm minimum spacing, 35 mm free radius at the
    centre): the lowest worst-case sidelobe over 500-6000 Hz of the layouts the project can make.
    """
    ref = importlib.resources.files("acam.beamform") / "data" / DEFAULT_ARRAY_FILE
    with importlib.resources.as_file(ref) as p:
        geom = ArrayGeometry.from_file(p)
    return ArrayGeometry(geom.positions, "acam128")


def aperiodic(n_mics: int = 128, aperture: float = 0.45, min_spacing: float = 0.025,
              clearance: float = 0.035, seed: int = 0, max_tries: int = 200_000) -> ArrayGeometry:
    """A random aperiodic planar layout in a square, with a minimum spacing (dart throwing).

    Parameters
    ----------
    n_mics : int
    aperture : float
        Side of the square, metres; microphones lie in ``[-aperture/2, aperture/2]^2``.
    min_spacing : float
        No two microphones are closer than this, metres.
    clearance : float
        Radius of the free disc at the centre (the camera lens), metres.
    seed : int
        Seed of the random generator: the same seed gives the same layout.
    """
    if n_mics < 1 or aperture <= 0 or min_spacing < 0 or clearance < 0:
        raise AcamError(f"impossible layout: n_mics={n_mics}, aperture={aperture}, "
                        f"min_spacing={min_spacing}, clearance={clearance}")
    rng = np.random.default_rng(seed)
    half = aperture / 2
    pts: list[np.ndarray] = []
    tries = 0
    while len(pts) < n_mics:
        tries += 1
        if tries > max_tries:
            raise AcamError(f"could not place {n_mics} microphones {min_spacing} m apart in a "
                            f"{aperture} m square; lower --min-spacing or raise --aperture")
        c = rng.uniform(-half, half, 2)
        if np.hypot(*c) < clearance:
            continue
        if pts and np.min(np.hypot(*(np.array(pts) - c).T)) < min_spacing:
            continue
        pts.append(c)
    xy = np.array(pts)
    return ArrayGeometry(np.column_stack([xy, np.zeros(n_mics)]), f"aperiodic{n_mics}")


def uniform_grid(n_mics: int = 128, aperture: float = 0.45) -> ArrayGeometry:
    """A uniform rectangular grid: the smallest square grid holding ``n_mics`` points, spacing
    ``aperture / (side - 1)``, with the points farthest from the centre left out."""
    if n_mics < 1 or aperture <= 0:
        raise AcamError(f"impossible grid: n_mics={n_mics}, aperture={aperture}")
    side = max(1, int(np.ceil(np.sqrt(n_mics))))
    c = (np.arange(side) - (side - 1) / 2) * (aperture / max(side - 1, 1))
    xy = np.array([(x, y) for y in c[::-1] for x in c])
    order = np.argsort(np.hypot(xy[:, 0], xy[:, 1]), kind="stable")[:n_mics]
    xy = xy[np.sort(order)]
    return ArrayGeometry(np.column_stack([xy, np.zeros(n_mics)]), f"grid{n_mics}")


def spiral(n_mics: int = 128, aperture: float = 0.45, arms: int = 8, clearance: float = 0.035,
           spiral_angle: float = 60.0) -> ArrayGeometry:
    """An Underbrink-style multi-arm logarithmic spiral: ``arms`` arms of ``n_mics / arms``
    microphones, radii from ``clearance`` to ``aperture / 2`` spaced for equal annulus areas, each arm
    a log spiral of angle ``spiral_angle`` degrees."""
    if n_mics % arms or n_mics < arms or arms < 1:
        raise AcamError(f"{n_mics} microphones do not split into {arms} equal arms")
    per = n_mics // arms
    r0, r1 = max(clearance, 1e-3), aperture / 2
    # equal-area annuli: r_i^2 evenly spaced between r0^2 and r1^2
    radii = np.sqrt(np.linspace(r0 ** 2, r1 ** 2, per))
    cot = 1 / np.tan(np.radians(spiral_angle))
    theta = np.log(radii / r0) / cot
    pts = []
    for a in range(arms):
        phi = theta + 2 * np.pi * a / arms
        pts.append(np.column_stack([radii * np.cos(phi), radii * np.sin(phi)]))
    xy = np.vstack(pts)
    return ArrayGeometry(np.column_stack([xy, np.zeros(n_mics)]), f"spiral{n_mics}")


def sunflower(n_mics: int = 128, aperture: float = 0.45, clearance: float = 0.035) -> ArrayGeometry:
    """A sunflower (Fermat) spiral: radius ~ sqrt(i) between ``clearance`` and ``aperture / 2``,
    successive microphones turned by the golden angle."""
    if n_mics < 1 or aperture <= 0:
        raise AcamError(f"impossible layout: n_mics={n_mics}, aperture={aperture}")
    i = np.arange(n_mics) + 0.5
    r0, r1 = clearance, aperture / 2
    r = np.sqrt(r0 ** 2 + (r1 ** 2 - r0 ** 2) * i / n_mics)
    phi = i * np.pi * (3 - np.sqrt(5))
    xy = np.column_stack([r * np.cos(phi), r * np.sin(phi)])
    return ArrayGeometry(np.column_stack([xy, np.zeros(n_mics)]), f"sunflower{n_mics}")
