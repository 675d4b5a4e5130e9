"""Progress bars (tqdm) that cost nothing when switched off."""

from __future__ import annotations


class _NoBar:
    def update(self, n=1): pass

    def set_postfix(self, **kw): pass

    def close(self): pass


def progress_bar(total: int, enabled: bool, desc: str, unit: str):
    """A tqdm bar over ``total`` ``unit``s, or a do-nothing stand-in when ``enabled`` is false."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, leave=True)
