"""Figure conventions shared by every picture acam draws: heat maps, geometry reports, learning
figures (confusion matrices, learning curves).

Every figure says what it shows (a title naming the subject, a second line with the settings and
the key figure - accuracy, peak level), labels every axis with its quantity and unit, and gives
every colour map a colour bar whose label names the quantity, its unit and its reference
("dB re peak", "fraction of the true class").  Every figure is a ``matplotlib.figure.Figure`` on
its own file-only Agg canvas (:func:`new_figure`, :func:`subplots`), made without pyplot: no screen
is needed, and the caller's pyplot backend and figures are left as they were.  PNGs are written
atomically (a temporary file renamed into place).

    from acam.core.figures import subplots, titled, colorbar, save_png
    fig, ax = subplots()
    im = ax.imshow(m)
    titled(ax, "hearnet distilled from DualCamNet", "trained on office, tested on outdoor; accuracy 0.61")
    colorbar(fig, im, ax, "fraction of the true class")
    save_png(fig, "confusion.png")
"""

from __future__ import annotations

import numpy as np

TITLE_SIZE = 10
DETAIL_SIZE = 8
LABEL_SIZE = 9
TICK_SIZE = 8


def new_figure(**kw):
    """A ``matplotlib.figure.Figure`` (``figsize``, ``dpi``, ``layout``...) drawn by its own Agg
    canvas: not registered with pyplot, so no backend is chosen or switched and nothing needs closing
    (the figure goes when the last reference does)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kw)
    FigureCanvasAgg(fig)
    return fig


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, dpi=None, layout=None, **kw):
    """``(figure, axes)`` as ``pyplot.subplots``, on :func:`new_figure`."""
    fig = new_figure(figsize=figsize, dpi=dpi, layout=layout)
    return fig, fig.subplots(nrows, ncols, **kw)


def titled(ax, what: str, detail: str = "") -> None:
    """A title in two lines: what is shown, then (smaller) its settings and key figure."""
    ax.set_title(what + (f"\n{detail}" if detail else ""), fontsize=TITLE_SIZE if not detail else DETAIL_SIZE + 1)


def colorbar(fig, mappable, ax, label: str, **kw):
    """A colour bar beside ``ax`` whose label names the quantity, unit and reference."""
    if kw.get("cax") is None:
        kw.setdefault("fraction", 0.046)
        kw.setdefault("pad", 0.03)
        cb = fig.colorbar(mappable, ax=ax, **kw)
    else:
        cb = fig.colorbar(mappable, **kw)
    cb.set_label(label, fontsize=LABEL_SIZE)
    cb.ax.tick_params(labelsize=TICK_SIZE)
    return cb


def save_png(fig, path, protect: tuple = (), dpi: float | None = None) -> None:
    """Write ``fig`` as a PNG at ``path`` atomically."""
    from .safeio import atomic_output

    with atomic_output(path, protect=protect) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def matrix_figure(counts: np.ndarray, labels, what: str, detail: str = "", xlabel: str = "predicted class",
                  ylabel: str = "true class"):
    """A confusion matrix as a figure: cells coloured by the fraction of each true class (row), the
    counts written in, a colour bar, class names on both axes.  Returns the figure (save it with
    :func:`save_png`)."""
    counts = np.asarray(counts)
    n = len(labels)
    fig, ax = subplots(figsize=(2.0 + 0.45 * n, 1.6 + 0.42 * n), dpi=100)
    frac = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=TICK_SIZE)
    ax.set_yticks(range(n), labels, fontsize=TICK_SIZE)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i, j]:
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=6,
                        color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    titled(ax, what, detail)
    colorbar(fig, im, ax, "fraction of the true class (row)")
    fig.tight_layout()
    return fig
