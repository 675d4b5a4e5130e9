"""``acam bench report``: benchmark JSON files -> markdown tables and PNG plots."""

from __future__ import annotations

import os

import numpy as np

from acam.core.errors import FormatError
from acam.core.figures import save_png, subplots
from acam.core.safeio import check_output, parse_json, read_bytes, reads_inputs, write_text

KEY_FIGURES = [
    ("peak.cpu_gemm_gflops", "CPU complex64 GEMM peak", "GFLOP/s"),
    ("peak.gpu_gemm_gflops", "GPU complex64 GEMM peak", "GFLOP/s"),
    ("compute.realtime_factor", "compute step, real-time factor", "x"),
    ("compute.gflops", "compute step, achieved", "GFLOP/s"),
    ("compute.peak_fraction", "compute step, fraction of GEMM peak", ""),
    ("e2e.realtime_factor", "end to end (beamform_file), real-time factor", "x"),
    ("cli.realtime_factor", "whole `beamform run` command, real-time factor", "x"),
    ("baseline.realtime_factor", "plain NumPy version, real-time factor", "x"),
    ("memory.steering_mib", "steering matrix", "MiB"),
]


MAX_JSON = 64 << 20


def load(path: str) -> dict:
    """A benchmark JSON document, checked for the layout the report reads."""
    doc = parse_json(read_bytes(path, "benchmark file", MAX_JSON), path, "benchmark JSON file")
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), dict) or not isinstance(doc.get("machine"), dict):
        raise FormatError(f"{path}: not a benchmark JSON file (an object with 'figures' and 'machine' objects)")
    for key, fig in doc["figures"].items():
        med = fig.get("median") if isinstance(fig, dict) else "?"
        if med is not None and (isinstance(med, bool) or not isinstance(med, (int, float))):
            raise FormatError(f"{path}: figure {key!r} has no numeric 'median'")
    return doc


def _median(doc, key):
    f = doc["figures"].get(key)
    return None if f is None else f.get("median")


def markdown(docs: list[tuple[str, dict]]) -> str:
    """The report's markdown; a document whose sections do not have the expected layout is refused
    in one line naming its file."""
    lines = _key_table(docs)
    for path, d in docs:
        try:
            lines += _sections(path, d)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as exc:
            raise FormatError(f"{path}: unexpected benchmark layout ({type(exc).__name__}: {exc})") from None
    return "\n".join(lines) + "\n"


def _key_table(docs) -> list[str]:
    names = [os.path.splitext(os.path.basename(p))[0] for p, _ in docs]
    lines = ["# Benchmark report", "", "| figure | unit | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(docs)]
    for key, label, unit in KEY_FIGURES:
        vals = [_median(d, key) for _, d in docs]
        if all(v is None for v in vals):
            continue
        lines.append(f"| {label} | {unit} | " + " | ".join("-" if v is None else f"{v:.4g}" for v in vals) + " |")
    return lines


def _sections(path: str, d: dict) -> list[str]:
    """One benchmark JSON as markdown: its heading and command, then a table per part it holds."""
    name = os.path.splitext(os.path.basename(path))[0]
    m = d["machine"]
    lines = ["", f"## {name}", "", f"`{d.get('command', '')}` on {d.get('date', '?')}, device {d.get('device')}, "
             f"{m.get('cpu_model', '?')}, {m.get('usable_cpus', '?')} cores"
             + (f", GPU {m['gpu']['name']}" if isinstance(m.get("gpu"), dict) else "")]
    for key, section in SECTIONS.items():
        if key in d:
            lines += section(d[key])
    return lines


def _peers(p: dict) -> list[str]:
    lines = ["", "| tool | s/frame | real-time factor | acam faster by | note |", "|---|---|---|---|---|",
             f"| acam (compute step) | {p['acam_seconds_per_frame']:.4g} | "
             f"{1 / (12 * p['acam_seconds_per_frame']):.3g} | 1 | |"]
    for tool, r in p.items():
        if tool == "acam_seconds_per_frame":
            continue
        if r is None:
            lines.append(f"| {tool} | - | - | - | not installed |")
            continue
        note = f"timed on {r['bins_timed']} bins, extrapolated linearly" if r["extrapolated"] else ""
        lines.append(f"| {tool} | {r['median']:.4g} | {r['realtime_factor']:.3g} | {r['acam_speedup']:,.0f} | {note} |")
    return lines


def _sweeps(sweeps: dict) -> list[str]:
    lines = ["", "| sweep | values | seconds (median) | log-log slope | expected |", "|---|---|---|---|---|"]
    for sname, r in sweeps.items():
        mem = ("; peak RSS " + ", ".join(f"{x['peak_rss_mib']:.0f}" for x in r["rows"]) + " MiB"
               if "peak_rss_mib" in r["rows"][0] else "")
        lines.append(f"| {sname} | " + ", ".join(str(x["value"]) for x in r["rows"]) + " | "
                     + ", ".join(f"{x['median']:.3g}" for x in r["rows"]) + mem
                     + f" | {r['slope']:.2f} | {r['expected_slope']:.0f} |")
    return lines


def _lowrank(rows: list) -> list[str]:
    lines = ["", "| steering | real-time factor | vs exact | mean rank | operations saved | max error (re peak, within 30 dB) | peaks moved |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        name = "exact" if r["tolerance"] == 0 else f"tolerance {r['tolerance']:g}"
        lines.append(f"| {name} | {r['realtime_factor']:.3g} | {r.get('speedup_vs_exact', 1):.2f} | "
                     f"{r['mean_rank']:.1f} | {100 * r['ops_saved']:.0f}% | {r['max_error']:.2e} | {r['peaks_moved']} |")
    return lines


def _steps(s: dict) -> list[str]:
    lines = ["", "| step | time |", "|---|---|",
             f"| MFCC compression | {s['mfcc']['seconds_per_frame'] * 1000:.3f} ms/frame |"]
    for k, v in s["dataset_sequence"].items():
        if k.startswith("scenario"):
            lines.append(f"| dataset sequence (tiny, {s['dataset_sequence']['seconds_of_audio']:g} s), {k} | {v:.2f} s |")
    for k, v in s["training"].items():
        est = v.get("epoch_estimate_s", {})
        est = ("; epoch estimate " + ", ".join(f"{p} {t / 60:.1f} min" for p, t in est.items())) if est else ""
        lines.append(f"| training step {k} (batch {v['batch']}) | {v['seconds_per_step']:.3f} s{est} |")
    di = s["distillation"]
    lines.append(f"| distillation step, cached / live teacher | {di['cached']:.3f} s / {di['live']:.3f} s "
                 f"({di['speedup']:.1f}x) |")
    return lines


def _scaling(sc: dict) -> list[str]:
    lines = ["", f"Scale-out: {sc['files']} recordings of {sc['seconds_each']:g} s, one task each, one thread "
             f"per task, {sc['cores']} cores; serial in-process {sc['serial']['files_per_s']:.2f} files/s on one "
             f"thread, {sc.get('serial_all_cores', {}).get('files_per_s', float('nan')):.2f} on all cores.", "",
             "| workers | files/s | ideal on cores | efficiency | warm files/s | warm efficiency | "
             "cluster start-up s | first-task extra s | overhead ms/task |",
             "|---|---|---|---|---|---|---|---|---|"]
    for x in sc["rows"]:
        lines.append(f"| {x['workers']} | {x['files_per_s']:.2f} | {x['ideal_on_cores_files_per_s']:.2f} | "
                     f"{x['efficiency_on_cores_files_per_s']:.0%} | {x['steady_files_per_s']:.2f} | "
                     f"{x['efficiency_on_cores_steady_files_per_s']:.0%} | {x['startup_s']:.2f} | "
                     f"{x['first_task_excess_s']:.2f} | {x['overhead_ms_per_task']:.2f} |")
    return lines


# the parts of a benchmark JSON that get a table, in the order they are written
SECTIONS = {"peers": _peers, "sweeps": _sweeps, "lowrank": _lowrank, "steps": _steps, "scaling": _scaling}


def plot_scaling(docs: list[tuple[str, dict]], out_png: str) -> bool:
    docs = [(p, d) for p, d in docs if "scaling" in d]
    if not docs:
        return False
    fig, ax = subplots(figsize=(4.6, 3.4), dpi=100)
    for path, d in docs:
        rows = d["scaling"]["rows"]
        w = [r["workers"] for r in rows]
        name = os.path.basename(path)
        ax.plot(w, [r["files_per_s"] for r in rows], "o-", label=f"{name}")
        ax.plot(w, [r["steady_files_per_s"] for r in rows], "s-", label=f"{name}, warm")
        ax.plot(w, [r["ideal_steady_files_per_s"] for r in rows], "k--", lw=0.8, label="ideal (N x 1 worker, warm)")
        ax.plot(w, [r["ideal_on_cores_steady_files_per_s"] for r in rows], "k:", lw=1.2,
                label=f"ideal on {d['scaling']['cores']} cores")
        ax.axvline(d["scaling"]["cores"], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("local Dask workers")
    ax.set_ylabel("recordings per second")
    ax.set_title("scale-out")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, out_png, [p for p, _ in docs])
    return True


def _save(fig, out_png: str, inputs) -> None:
    fig.tight_layout()
    save_png(fig, out_png, protect=inputs)


def plot_sweeps(docs: list[tuple[str, dict]], out_png: str) -> bool:
    names = sorted({k for _, d in docs for k in d.get("sweeps", {})})
    if not names:
        return False
    fig, axes = subplots(1, len(names), figsize=(4 * len(names), 3.4), dpi=100, squeeze=False)
    for ax, sname in zip(axes[0], names):
        for path, d in docs:
            r = d.get("sweeps", {}).get(sname)
            if not r:
                continue
            x = np.array([row["size"] for row in r["rows"]], float)
            y = np.array([row["median"] for row in r["rows"]])
            ax.loglog(x, y, "o-", label=f"{os.path.basename(path)} (slope {r['slope']:.2f})")
            ax.loglog(x, y[0] * x / x[0], "k--", lw=0.8, label="slope 1")
        ax.set_title(sname)
        ax.set_xlabel(sname if sname != "grid" else "pixels")
        ax.set_ylabel("seconds per block")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    _save(fig, out_png, [p for p, _ in docs])
    return True


@reads_inputs
def report(paths: list[str], out_md: str | None = None) -> tuple[str, str | None]:
    """Markdown (and plots beside ``out_md``) from benchmark files; no output replaces an input."""
    docs = [(p, load(p)) for p in paths]
    md = markdown(docs)
    png = None
    if out_md:
        check_output(out_md, paths)          # before any plot is written
        png = os.path.splitext(out_md)[0] + "_sweeps.png"
        if _plot(plot_sweeps, docs, png):
            md += f"\n![sweeps]({os.path.basename(png)})\n"
        else:
            png = None
        scale_png = os.path.splitext(out_md)[0] + "_scaling.png"
        if _plot(plot_scaling, docs, scale_png):
            md += f"\n![scale-out]({os.path.basename(scale_png)})\n"
        write_text(out_md, md, protect=paths)
    return md, png


def _plot(fn, docs, png) -> bool:
    try:
        return fn(docs, png)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise FormatError(f"a benchmark file has an unexpected layout for {os.path.basename(png)} "
                          f"({type(exc).__name__}: {exc})") from None
