"""Checked reading of HDF5 contents: attributes of the right type and datasets whose declared size
the file really holds, so a crafted file gives one clear :class:`FormatError` instead of a traceback,
a silent zero-filled array or an allocation the machine cannot hold.

Every check here costs a few metadata calls per dataset (never per block of data).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import FormatError
from .resources import check_allocation

NUMBER_KINDS = "iuf"


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def attr_number(holder, name: str, path, default=None, *, positive: bool = False):
    """The attribute ``name`` of ``holder`` (a file, group or dataset) as a finite float, ``default``
    when absent; :class:`FormatError` names a string, an empty or an array-valued attribute."""
    try:
        if name not in holder.attrs:
            return default
        value = holder.attrs[name]
    except (OSError, TypeError, ValueError, KeyError) as exc:
        raise FormatError(f"{path}: attribute {name!r} cannot be read ({exc})") from None
    arr = np.asarray(value) if not isinstance(value, (str, bytes)) else np.asarray([], object)
    if arr.dtype.kind not in NUMBER_KINDS or arr.size != 1:
        raise FormatError(f"{path}: attribute {name!r}={_show(value)} is not a number")
    x = float(arr.reshape(-1)[0])
    if not math.isfinite(x) or (positive and x <= 0):
        raise FormatError(f"{path}: attribute {name!r}={x} is not a {'positive ' if positive else ''}finite number")
    return x


def attr_text(holder, name: str, path, default: str | None = None) -> str | None:
    """A string attribute (bytes decoded), ``default`` when absent."""
    if name not in holder.attrs:
        return default
    value = holder.attrs[name]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise FormatError(f"{path}: attribute {name!r}={_show(value)} is not text")


def dataset(f, name: str, path, *, ndim: int | tuple | None = None, kinds: str = NUMBER_KINDS):
    """The dataset ``name`` of an open file after checking its kind, rank and stored size."""
    import h5py

    try:
        d = f.get(name)
    except (OSError, KeyError, ValueError) as exc:
        raise FormatError(f"{path}: '{name}' cannot be opened ({exc})") from None
    if not isinstance(d, h5py.Dataset):
        raise FormatError(f"{path}: no '{name}' dataset" if d is None else f"{path}: '{name}' is not a dataset")
    if d.dtype.kind not in kinds:
        raise FormatError(f"{path}: '{name}' has dtype {d.dtype}; expected numbers")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if dims is not None and d.ndim not in dims:
        raise FormatError(f"{path}: '{name}' has shape {d.shape}; expected {' or '.join(f'{n}-D' for n in dims)}")
    check_storage(d, name, path)
    return d


def check_storage(d, name: str, path) -> None:
    """Refuse a dataset whose declared shape the file does not hold: a contiguous dataset with less
    storage than its size, a chunked one with chunks never written (HDF5 would invent fill values)."""
    import h5py

    nbytes = int(np.prod(d.shape, dtype=object)) * d.dtype.itemsize if d.shape else d.dtype.itemsize
    if nbytes == 0 or d.is_virtual or d.external:
        return
    layout = d.id.get_create_plist().get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        held = d.id.get_storage_size()
        if held < nbytes:
            raise FormatError(f"{path}: '{name}' declares shape {d.shape} ({nbytes} bytes) but the file holds "
                              f"{held} bytes of it")
    elif layout == h5py.h5d.CHUNKED:
        want = 1
        for n, c in zip(d.shape, d.chunks):
            want *= -(-n // c)
        held = d.id.get_num_chunks()
        if held < want:
            raise FormatError(f"{path}: '{name}' declares shape {d.shape} in {want} chunks but the file holds "
                              f"{held} of them")


def read_all(f, name: str, path, **kw) -> np.ndarray:
    """A whole (small) dataset as an array, after :func:`dataset`'s checks and a memory check."""
    d = dataset(f, name, path, **kw)
    check_allocation(d.size * d.dtype.itemsize, f"reading '{name}' of {path}")
    try:
        return d[()]
    except (OSError, ValueError, TypeError) as exc:
        raise FormatError(f"{path}: '{name}' cannot be read ({str(exc).splitlines()[0]})") from None
