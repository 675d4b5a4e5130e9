"""Checks of numeric settings, shared by every library entry point.

Each check names the *parameter* (``epochs=0 must be at least 1``), never a command-line flag: the
library does not know how it was called.  NaN and infinities are refused wherever a finite number is
meant; integers must be integers (``2.5`` epochs is refused, ``2.0`` is taken as 2).
"""

from __future__ import annotations

import math
import numbers

from .errors import AcamError


def number(name: str, value, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False, integer: bool = False, none_ok: bool = False):
    """``value`` as a finite float (or int when ``integer``) inside the given bounds, else
    :class:`AcamError` naming ``name`` and the bad value."""
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AcamError(f"{name}={value!r} must be a number")
    v = float(value)
    if not math.isfinite(v):
        raise AcamError(f"{name}={value!r} must be a finite number")
    if integer:
        if v != int(v):
            raise AcamError(f"{name}={value!r} must be a whole number")
        v = int(v)
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise AcamError(f"{name}={value!r} must be {'above' if lo_open else 'at least'} {lo:g}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise AcamError(f"{name}={value!r} must be {'below' if hi_open else 'at most'} {hi:g}")
    return v


def positive(name: str, value, *, integer: bool = False, none_ok: bool = False):
    """A finite number above 0 (an integer >= 1 when ``integer``)."""
    if integer:
        return number(name, value, lo=1, integer=True, none_ok=none_ok)
    return number(name, value, lo=0, lo_open=True, none_ok=none_ok)


def choice(name: str, value, options) -> str:
    """``value`` if it is one of ``options``, else :class:`AcamError` listing them."""
    if value not in options:
        raise AcamError(f"{name}={value!r} must be one of {', '.join(map(str, options))}")
    return value


def int_list(name: str, text: str, *, lo: int | None = None) -> list[int]:
    """``'1,2,4'`` -> ``[1, 2, 4]``; :class:`AcamError` naming the token that is not a whole number."""
    out = []
    for tok in str(text).split(","):
        tok = tok.strip()
        try:
            out.append(int(tok))
        except ValueError:
            raise AcamError(f"{name}={text!r}: {tok!r} is not a whole number") from None
        if lo is not None and out[-1] < lo:
            raise AcamError(f"{name}={text!r}: {out[-1]} must be at least {lo}")
    return out
