"""``acam dataset diagnose``: how much spatial filtering can help on a dataset, measured without training.

Each sequence is rendered again in three parts - the subject (``target``), the competing sources
(``interferers``) and the noise (ambience, wind, the microphones' own noise) - with the same random
draws as its build, so the parts add up to the stored recording (physics 1 and 2 alike).  Then:

| figure | definition |
|---|---|
| mono SNR | ``10 lg(E_target / E_noise)`` of the dataset's single microphone (``mono``) over the whole sequence, in the band 900-6400 Hz (the paper's display band, where a 0.45 m array resolves directions); ``_full`` figures: all bins, 0-6144 Hz |
| pixel SNR | the same ratio for the dataset's beamformer at the source's pixel in every frame (the cube's power: what each part makes at the array centre from that look point) |
| gain | pixel SNR - mono SNR: what the array's spatial filtering buys against the noise |
| mono SIR, pixel SIR | the same with the interferers in place of the noise (none: not given) |
| target dBA | LAeq of the subject's sound at the single microphone, its reverberation included (the beamformer keeps less of that, so in a reverberant room the gain also counts the subject's own echoes removed as target lost) |
| background dBA | LAeq of interferers + noise at the single microphone |
| source dBA | LAeq at 1 m of the subject's dry sound (version 1 sounds have no calibrated unit) |

Per scenario: the reverberation time measured on an impulse rendered by the same room code from the
first sequence's source position to the single microphone (T30, mean of the 500 Hz and 1 kHz octaves,
from the Schroeder integral), and the range of target and source levels across actions.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from acam.beamform import backend
from acam.beamform.sensor import DISPLAY_BAND
from acam.core.errors import AcamError

from . import physics as ph
from .build import (FRAME_RATE, SAMPLE_FREQ, dataset_beamformer, physics_of, preset_of, sequence_stems)
from .scenarios import scenario_label
from .sounds import ACTIONS
from .store import Dataset

FIGURES = ("snr_mono", "snr_pixel", "gain", "sir_mono", "sir_pixel", "snr_mono_full", "snr_pixel_full", "gain_full",
           "sir_mono_full", "sir_pixel_full", "target_dba", "background_dba", "source_dba")


def _db(a: float, b: float) -> float | None:
    if b <= 0 or a <= 0:
        return None
    return 10 * math.log10(a / b)


BAND = DISPLAY_BAND       # Hz: the paper's display band (Fig. 1), where a 0.45 m array resolves directions


def pixel_spectrum(bf, x: np.ndarray, track: np.ndarray, block: int = 32) -> np.ndarray:
    """Energy per bin at the track's pixel, summed over frames (the cube's power convention):
    [shape=(n_bins,)]."""
    L = bf.frame_len
    n_frames = len(track)
    frames = x[: n_frames * L].reshape(n_frames, L, -1)
    pix = np.array([bf.spec.grid.pixel_of(p) for p in track])
    total = np.zeros(bf.spec.n_bins)
    for b0 in range(0, n_frames, block):
        cube = backend.to_host(bf.process(frames[b0:b0 + block]))
        r, c = pix[b0:b0 + block, 0], pix[b0:b0 + block, 1]
        total += cube[np.arange(len(cube)), r, c, :].astype(np.float64).sum(0)
    return total


def mono_spectrum(bf, x: np.ndarray, n_frames: int) -> np.ndarray:
    """Energy per bin of one microphone's signal, framed, windowed and scaled as the beamformer does
    (one microphone as its own 'array'): [shape=(n_bins,)]."""
    L, nfft, n_bins = bf.frame_len, bf.spec.nfft, bf.spec.n_bins
    seg = L // bf.n_segments
    w = backend.to_host(bf.window).astype(np.float64)
    frames = np.asarray(x[: n_frames * L], np.float64).reshape(n_frames * bf.n_segments, seg)
    if bf.window_name != "boxcar":
        frames = frames * w[None, :]
    power = np.abs(np.fft.rfft(frames, nfft, axis=1)[:, :n_bins]) ** 2
    return power.sum(0) * backend.to_host(bf.scale).astype(np.float64)


def _ratios(bf, spectra: dict, prefix: str) -> dict:
    f = bf.spec.frequencies()
    band = (f >= BAND[0]) & (f <= BAND[1])
    out = {}
    for suffix, sel in (("", band), ("_full", np.ones_like(band))):
        e = {k: float(v[sel].sum()) for k, v in spectra.items()}
        out[f"snr_{prefix}{suffix}"] = _db(e["target"], e["noise"])
        out[f"sir_{prefix}{suffix}"] = _db(e["target"], e["interferers"])
    return out


def sequence_figures(seq: dict, manifest: dict, bf) -> dict:
    """The figures of one sequence (module docs)."""
    stems, mono, track = sequence_stems(seq, manifest, bf.spec.geometry, bf.spec.grid)
    fs = float(manifest.get("sample_freq", SAMPLE_FREQ))
    out = {"name": seq["name"], "scenario": seq["scenario"], "action": seq["action"]}
    out.update(_ratios(bf, {k: mono_spectrum(bf, v[:, mono], len(track)) for k, v in stems.items()}, "mono"))
    out.update(_ratios(bf, {k: pixel_spectrum(bf, v, track) for k, v in stems.items()}, "pixel"))
    for suffix in ("", "_full"):
        a, b = out[f"snr_pixel{suffix}"], out[f"snr_mono{suffix}"]
        out[f"gain{suffix}"] = None if a is None or b is None else a - b
    background = stems["interferers"][:, mono].astype(np.float64) + stems["noise"][:, mono]
    out.update({"target_dba": ph.laeq(stems["target"][:, mono], fs), "background_dba": ph.laeq(background, fs),
                "source_dba": _source_level(seq, manifest), "position": [float(v) for v in track.mean(0)],
                "mono_mic": mono})
    return out


def _source_level(seq: dict, manifest: dict) -> float:
    from acam.beamform import CameraGrid

    from .build import plan_v2, sounds_of
    from .sounds import Subject, synthesise

    fs, seed = float(manifest.get("sample_freq", SAMPLE_FREQ)), int(manifest["seed"])
    n = seq["n_frames"] * int(fs / FRAME_RATE)
    if physics_of(manifest) == 2:
        plan, _, _ = plan_v2(seq, preset_of(manifest), CameraGrid(), seed, sounds_of(manifest))
        return ph.laeq(plan.target_signal, fs)
    rng = np.random.default_rng([seed, seq["action"], seq["scenario"], seq["subject"], seq["repetition"]])
    return ph.laeq(synthesise(seq["action"], n / fs, fs, Subject.draw(seq["subject"], seed), rng), fs)


def rendered_rt60(manifest: dict, scenario: int, position, mic: np.ndarray) -> float:
    """T30 (s), mean of the 500 Hz and 1 kHz octaves, of an impulse from ``position`` to ``mic``
    rendered by the dataset's own room code."""
    from .rooms import schroeder_t30
    from .scenes import Plan, Sensor, render, v1_impulse_response

    fs = float(manifest.get("sample_freq", SAMPLE_FREQ))
    if physics_of(manifest) == 1:
        h = v1_impulse_response(scenario, np.asarray(position), np.atleast_2d(mic), fs, preset_of(manifest).max_order)
    else:
        from .interferers import Emission, Source

        n = int(1.5 * fs * max(0.5, float(np.max(ph.eyring_rt60(ph.ROOMS[2])))))
        imp = np.zeros(n)
        imp[0] = 1.0
        plan = Plan(scenario, n, fs, (0, 0, scenario, 0, 0), Source("target", [Emission(0, imp, np.asarray(position))]),
                    [], imp)
        h = render(plan, np.atleast_2d(mic), Sensor(np.ones(1), np.zeros(1), ()), separate=True)["target"][:, 0]
    return float(np.mean([schroeder_t30(h, fs, band) for band in (500.0, 1000.0)]))


def check_outputs(path) -> str:
    """The figure's path beside the JSON report ``path``, after both are checked (not inside a
    folder the command reads, not an input, not a special file, not the same file)."""
    from acam.core.safeio import check_output

    path = os.fspath(path)
    png = os.path.splitext(path)[0] + ".png"
    if os.path.abspath(png) == os.path.abspath(path):
        raise AcamError(f"output {path!r}: the figure goes beside the JSON report as NAME.png; "
                        "give the report another name (e.g. .json)")
    check_output(path)
    check_output(png)
    return png


def diagnose(folder, limit: int | None = None, device: str = "cpu", progress=None, output=None) -> dict:
    """Figures per sequence, per scenario and action (means of the dB figures), and per scenario.

    Parameters
    ----------
    limit : int, optional
        At most this many built sequences (in manifest order).
    output : str, optional
        Where the report will be written: checked before any work (:func:`check_outputs`).
    progress : callable, optional
        Called with each sequence's name as it is done.
    """
    d = Dataset(folder)
    if output is not None:       # before any work: the report may not land inside the dataset
        check_outputs(output)
    manifest = d.manifest
    if manifest.get("imported_from") or not isinstance(manifest.get("preset"), dict) or manifest.get("seed") is None:
        raise AcamError(f"{folder!r} was not simulated by 'acam dataset build' (imported or incomplete "
                        "manifest): diagnose re-renders simulated sequences only")
    seqs = d.available()
    if limit is not None:
        if limit < 1:
            raise AcamError(f"limit={limit} must be at least 1")
        seqs = seqs[:limit]
    if not seqs:
        raise AcamError(f"{folder!r} has no built sequences to diagnose")
    bf = dataset_beamformer(manifest, device)
    rows = []
    for s in seqs:
        rows.append(sequence_figures(s, manifest, bf))
        if progress is not None:
            progress(s["name"])
    return {"folder": os.path.abspath(os.fspath(folder)), "physics": physics_of(manifest),
            "preset": manifest["preset"]["name"], "sequences": rows, "table": _table(rows),
            "scenarios": _scenarios(rows, manifest, bf)}


def _mean(values) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _table(rows: list) -> list:
    out = []
    for sc in sorted({r["scenario"] for r in rows}):
        for a in sorted({r["action"] for r in rows if r["scenario"] == sc}):
            group = [r for r in rows if r["scenario"] == sc and r["action"] == a]
            out.append({"scenario": sc, "action": a, "action_name": ACTIONS[a], "n": len(group),
                        **{k: _mean(r[k] for r in group) for k in FIGURES}})
    return out


def _scenarios(rows: list, manifest: dict, bf) -> dict:
    out = {}
    for sc in sorted({r["scenario"] for r in rows}):
        group = [r for r in rows if r["scenario"] == sc]
        mic = bf.spec.geometry.positions[group[0]["mono_mic"]]
        per_action = {}
        for r in group:
            per_action.setdefault(r["action"], []).append(r)
        target = [_mean(x["target_dba"] for x in g) for g in per_action.values()]
        source = [_mean(x["source_dba"] for x in g) for g in per_action.values()]
        stated = ph.ROOMS[sc].stated_rt60 if physics_of(manifest) == 2 else {1: 0.0, 2: 0.7, 3: 0.0}[sc]
        out[str(sc)] = {"rt60": rendered_rt60(manifest, sc, group[0]["position"], mic), "stated_rt60": stated,
                        "target_dba_range": float(max(target) - min(target)),
                        "source_dba_range": float(max(source) - min(source)),
                        **{k: _mean(r[k] for r in group) for k in FIGURES}}
    return out


def format_table(report: dict) -> str:
    """The per-scenario-and-action table and the per-scenario lines, as text."""
    head = (f"{'sc':>2} {'action':<18} {'n':>2} {'SNR mono':>8} {'SNR pix':>8} {'gain':>6} {'SIR mono':>8} "
            f"{'SIR pix':>8} {'target':>7} {'backgr':>7} {'source':>7}")
    lines = [f"{report['folder']}: physics {report['physics']}, preset {report['preset']}, "
             f"{len(report['sequences'])} sequences (dB; levels dBA)", head]

    def f(v, w=8):
        return f"{'-':>{w}}" if v is None else f"{v:>{w}.1f}"

    for r in report["table"]:
        lines.append(f"{r['scenario']:>2} {r['action_name']:<18} {r['n']:>2} {f(r['snr_mono'])} {f(r['snr_pixel'])} "
                     f"{f(r['gain'], 6)} {f(r['sir_mono'])} {f(r['sir_pixel'])} {f(r['target_dba'], 7)} "
                     f"{f(r['background_dba'], 7)} {f(r['source_dba'], 7)}")
    for sc, r in report["scenarios"].items():
        lines.append(f"{scenario_label(sc)}: RT60 {r['rt60']:.2f} s (stated {r['stated_rt60']:.2f} s), target level range "
                     f"{r['target_dba_range']:.1f} dB, source level range {r['source_dba_range']:.1f} dB, "
                     f"mean SNR mono {f(r['snr_mono'], 0).strip()} -> pixel {f(r['snr_pixel'], 0).strip()} dB, "
                     f"SIR mono {f(r['sir_mono'], 0).strip()} -> pixel {f(r['sir_pixel'], 0).strip()} dB")
    return "\n".join(lines)


def write(report: dict, path) -> str:
    """Write the report as JSON at ``path`` and a figure beside it (same name, ``.png``); returns the
    figure's path."""
    from acam.beamform.io import atomic_output
    from acam.core.figures import save_png

    path = os.fspath(path)
    png = check_outputs(path)
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    save_png(figure(report), png, dpi=110)
    return png


def figure(report: dict):
    """Mono vs source-pixel SNR and SIR per action, one row per scenario."""
    from acam.core.figures import LABEL_SIZE, TICK_SIZE, subplots, titled

    scen = sorted({r["scenario"] for r in report["table"]})
    fig, axes = subplots(len(scen), 2, figsize=(14, 3.8 * len(scen)), squeeze=False, sharey="col")
    for i, sc in enumerate(scen):
        rows = [r for r in report["table"] if r["scenario"] == sc]
        x = np.arange(len(rows))
        info = report["scenarios"][str(sc)]
        for j, (a, b, what) in enumerate((("snr_mono", "snr_pixel", "SNR (target / noise)"),
                                          ("sir_mono", "sir_pixel", "SIR (target / interferers)"))):
            ax = axes[i, j]
            nan = lambda v: np.nan if v is None else v  # noqa: E731
            ax.bar(x - 0.2, [nan(r[a]) for r in rows], 0.4, label="single microphone")
            ax.bar(x + 0.2, [nan(r[b]) for r in rows], 0.4, label="beamformer at the source pixel")
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xticks(x, [r["action_name"] for r in rows], rotation=40, ha="right", fontsize=TICK_SIZE)
            ax.set_ylabel(f"{what}, dB", fontsize=LABEL_SIZE)
            titled(ax, f"{scenario_label(sc)}: {what}",
                   f"{BAND[0]:.0f}-{BAND[1]:.0f} Hz; physics {report['physics']}, preset {report['preset']}; "
                   f"RT60 {info['rt60']:.2f} s")
            if all(r[a] is None for r in rows):
                ax.text(0.5, 0.5, "no interferers in this scenario", ha="center", va="center", transform=ax.transAxes)
            ax.grid(axis="y", alpha=0.3)
            if i == 0:
                ax.legend(fontsize=TICK_SIZE)
    fig.tight_layout()
    return fig
