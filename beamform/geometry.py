"""Microphone-array geometries: the frozen :class:`ArrayGeometry`, its file formats and layouts.

Coordinates are metres in the camera/array frame: origin at the array centre, x to the right, y up,
z forward into the scene (as seen from behind the camera).  A planar array lies in z = 0.

File formats read and written by :meth:`ArrayGeometry.from_file` / :meth:`ArrayGeometry.save`:

``.xml``  Acoular's microphone-geometry XML (``<MicArray name=..><pos Name="Point 1" x= y= z=/>``),
          so Acoular's shipped arrays load here and ours load in Acoular.
``.csv``  one microphone per line, ``x,y,z``.  A first line is a header only if it holds a token
          that is not a number (``x,y,z``); ``.5,0,0``, ``+0.1,...`` and ``nan,...`` are data.
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

from xml.sax.saxutils import escape

from ..core.checks import number
from ..core.digest import digest
from ..core.errors import AcamError, FormatError
from ..core.resources import check_allocation
from ..core.safeio import atomic_output, input_file, write_text

DEFAULT_ARRAY_FILE = "acam128.xml"
MAX_METRES = 1000.0            # no coordinate of a microphone, a source or a room beyond this
MAX_TEXT_BYTES = 64 << 20      # a text array file (.csv, .xml) larger than this is refused unread


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
    source: str = field(default="", repr=False)     # the file it was read from, if any
    digest: str = field(init=False, repr=False)

    def __post_init__(self):
        pos = np.array(self.positions, dtype=np.float64, copy=True)
        if pos.ndim == 2 and pos.shape[1] == 2:  # planar layouts may omit z
            pos = np.column_stack([pos, np.zeros(len(pos))])
        if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 1:
            raise FormatError(f"microphone positions have shape {pos.shape}; expected (n_mics, 3)")
        if not np.all(np.isfinite(pos)):
            raise FormatError("microphone positions contain NaN or infinite values")
        far = float(np.abs(pos).max())
        if far > MAX_METRES:
            raise FormatError(f"microphone positions reach {far:g} m from the array centre, more than "
                              f"{MAX_METRES:g} m (positions are metres)")
        pos.setflags(write=False)
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "digest", digest("ArrayGeometry", pos))

    @property
    def n_mics(self) -> int:
        return self.positions.shape[0]

    @property
    def aperture(self) -> float:
        """Largest distance between two microphones, metres."""
        check_allocation(self.n_mics ** 2 * 24, f"distances between {self.n_mics} microphones")
        d = self.positions[:, None, :] - self.positions[None, :, :]
        return float(np.sqrt((d ** 2).sum(-1)).max())

    @property
    def min_spacing(self) -> float:
        """Smallest distance between two microphones, metres (inf for one microphone)."""
        if self.n_mics < 2:
            return float("inf")
        check_allocation(self.n_mics ** 2 * 24, f"distances between {self.n_mics} microphones")
        d = np.sqrt(((self.positions[:, None, :] - self.positions[None, :, :]) ** 2).sum(-1))
        d[np.diag_indices_from(d)] = np.inf
        return float(d.min())

    # ------------------------------------------------------------------------------------ files
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ArrayGeometry":
        """Load a geometry from ``.xml`` (Acoular), ``.csv``, ``.npy`` or ``.h5`` (raw recording)."""
        path = os.fspath(path)
        ext = os.path.splitext(path)[1].lower()
        if ext not in _READERS:
            raise AcamError(f"array file {path!r}: unknown extension {ext!r} (use .xml, .csv, .npy, .h5)")
        input_file(path, "array file")
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            pos, name = _READERS[ext](path, name)
        except (ET.ParseError, ValueError, OSError, UnicodeDecodeError) as exc:
            raise FormatError(f"cannot read array file {path!r}: {str(exc).splitlines()[0]}") from None
        try:
            return cls(pos, name, os.path.abspath(path))
        except AcamError as exc:
            raise FormatError(f"array file {path!r}: {exc}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the geometry as ``.xml`` (Acoular's format), ``.csv`` or ``.npy`` (atomically)."""
        path = os.fspath(path)
        ext = os.path.splitext(path)[1].lower()
        if ext == ".xml":
            lines = ['<?xml version="1.1" encoding="utf-8"?>', f'<MicArray name="{escape(self.name)}">']
            lines += [f'  <pos Name="Point {i + 1}" x="{x:.6f}" y="{y:.6f}" z="{z:.6f}"/>'
                      for i, (x, y, z) in enumerate(self.positions)]
            lines.append("</MicArray>")
            write_text(path, "\n".join(lines) + "\n")
        elif ext == ".csv":
            write_text(path, "x,y,z\n" + "".join(f"{x:.6f},{y:.6f},{z:.6f}\n" for x, y, z in self.positions))
        elif ext == ".npy":
            with atomic_output(path) as tmp, open(tmp, "wb") as f:
                np.save(f, self.positions)
        else:
            raise AcamError(f"cannot write array file {path!r}: use .xml, .csv or .npy")


MAX_MICS = 1 << 20


def _check_text_size(path) -> None:
    size = os.path.getsize(path)
    if size > MAX_TEXT_BYTES:
        raise ValueError(f"{size} bytes is more than the {MAX_TEXT_BYTES} bytes an array file may hold")


def _read_xml(path, name):
    _check_text_size(path)
    root = ET.parse(path).getroot()
    pts = [[float(p.get(a, 0.0)) for a in ("x", "y", "z")] for p in root.iter("pos")]
    return np.array(pts, float).reshape(-1, 3), root.get("name", name)


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _read_csv(path, name):
    _check_text_size(path)
    with open(path, encoding="utf-8") as fh:
        rows = [ln for ln in fh.read().splitlines() if ln.strip()]
    if rows and not all(_is_number(t) for t in rows[0].split(",")):
        rows = rows[1:]               # a header: a token that is not a number ('x,y,z')
    pts = []
    for i, ln in enumerate(rows):
        vals = [float(v) for v in ln.split(",")]
        if len(vals) not in (2, 3):
            raise ValueError(f"line {i + 1}: {len(vals)} values; expected x,y[,z]")
        pts.append(vals + [0.0] * (3 - len(vals)))
    return np.array(pts, float).reshape(-1, 3), name


def _read_npy(path, name):
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":      # a zip (.npz) or anything else under the name .npy
            raise ValueError("not a NumPy .npy file (no .npy header)")
    arr = np.load(path, mmap_mode="r", allow_pickle=False)   # the header's shape checked against the file
    if arr.dtype.kind not in "iuf" or arr.size > 3 * MAX_MICS:
        raise ValueError(f"holds {arr.dtype} of shape {arr.shape}; expected (n_mics, 3) numbers")
    return np.array(arr, float), name


def _read_h5(path, name):
    from ..core.h5read import read_all
    from ..core.safeio import open_h5

    with open_h5(path, "array file") as f:
        if "mic_positions" not in f:
            raise FormatError(f"{path}: no 'mic_positions' dataset")
        return read_all(f, "mic_positions", path, ndim=2), name


_READERS = {".xml": _read_xml, ".csv": _read_csv, ".npy": _read_npy, ".h5": _read_h5, ".hdf5": _read_h5}


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


def check_layout(n_mics, aperture, clearance: float = 0.0, min_spacing: float = 0.0) -> None:
    """Refuse layout settings that cannot give ``n_mics`` microphones inside the square aperture."""
    number("n_mics", n_mics, lo=1, hi=MAX_MICS, integer=True)
    number("aperture", aperture, lo=0, lo_open=True)
    number("min_spacing", min_spacing, lo=0)
    number("clearance", clearance, lo=0)
    if clearance >= aperture / 2:
        raise AcamError(f"clearance={clearance} m leaves no room inside aperture={aperture} m "
                        f"(it must be below half the aperture, {aperture / 2:g} m)")


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
    check_layout(n_mics, aperture, clearance, min_spacing)
    rng = np.random.default_rng(seed)
    half = aperture / 2
    pts: list[np.ndarray] = []
    tries = 0
    while len(pts) < n_mics:
        tries += 1
        if tries > max_tries:
            raise AcamError(f"could not place {n_mics} microphones {min_spacing} m apart in a "
                            f"{aperture} m square; lower min_spacing or raise aperture")
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
    check_layout(n_mics, aperture)
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
    check_layout(n_mics, aperture, clearance)
    number("arms", arms, lo=1, integer=True)
    number("spiral_angle", spiral_angle, lo=0, hi=90, lo_open=True, hi_open=True)
    if n_mics % arms or n_mics < arms:
        raise AcamError(f"{n_mics} microphones do not split into arms={arms} equal arms")
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
    check_layout(n_mics, aperture, clearance)
    i = np.arange(n_mics) + 0.5
    r0, r1 = clearance, aperture / 2
    r = np.sqrt(r0 ** 2 + (r1 ** 2 - r0 ** 2) * i / n_mics)
    phi = i * np.pi * (3 - np.sqrt(5))
    xy = np.column_stack([r * np.cos(phi), r * np.sin(phi)])
    return ArrayGeometry(np.column_stack([xy, np.zeros(n_mics)]), f"sunflower{n_mics}")
