"""acam's command line: ``acam`` with the sub-groups ``beamform`` and ``learn`` (also installed as
commands of their own: ``acam beamform run`` is ``beamform run``).

Thin by design: options are parsed here, the work is done by the library, and every
:class:`~acam.core.errors.AcamError` (or OS error) becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import os
import sys

import click

from acam import __version__
from acam.core.errors import AcamError
from acam.beamform.steering import DEFAULT_FORMULATION, FORMULATIONS
from acam.beamform.sensor import HFOV, IMAGE_COLS, IMAGE_ROWS, SAMPLE_FREQ, SPEED_OF_SOUND, VFOV


# ----------------------------------------------------------------------------------- error mapping
def _flag(command: click.Command, param: str) -> str | None:
    """The command's own spelling of a library parameter (``lam`` -> ``--lambda``), if it has one."""
    for p in command.params:
        if p.name == param and isinstance(p, click.Option):
            return max(p.opts, key=len)
    return None


class _Command(click.Command):
    """A command whose library errors name its flags: a :class:`ParameterError` about ``lam`` reads
    ``--lambda 2.0 must lie in [0, 1]``; an :class:`OutputExists` points at ``--overwrite``."""

    def invoke(self, ctx):
        from acam.core.errors import OutputExists, ParameterError

        try:
            return super().invoke(ctx)
        except ParameterError as exc:
            flag = _flag(self, exc.param)
            if flag is None:
                raise
            raise click.ClickException(f"{flag} {exc.value} {exc.rule}") from None
        except OutputExists as exc:
            if _flag(self, "overwrite") is None:
                raise
            raise click.ClickException(f"{exc.path} {exc.reason}; use --overwrite to replace it") from None


class _Group(click.Group):
    """A click group that turns library errors into one line and a non-zero exit."""

    command_class = _Command

    def invoke(self, ctx):
        from acam.core.errors import one_line_warnings
        from acam.core.safeio import input_scope

        try:
            with input_scope(), one_line_warnings():   # inputs remembered (no output replaces one); warnings in one line
                return super().invoke(ctx)
        except click.UsageError as exc:  # one line instead of usage + hint + error
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            raise click.ClickException(exc.format_message() + hint) from None
        except AcamError as exc:
            raise click.ClickException(str(exc)) from None
        except MemoryError:
            raise click.ClickException("out of memory; use a smaller --block-frames or fewer --bins") from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None


_Group.group_class = _Group


# ------------------------------------------------------------------------------------ option types
class Numbers(click.ParamType):
    """``n`` numbers separated by commas or colons: a band ``LO:HI``, coordinates ``X,Y,Z``, a list of
    frequencies (``n`` None: one or more).  ``ordered``: a band whose ``0 <= LO < HI``."""

    def __init__(self, n: int | None, metavar: str, ordered: bool = False):
        self.n, self.name, self.ordered = n, metavar, ordered

    def get_metavar(self, param, ctx=None):
        return self.name

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            vals = tuple(float(v) for v in str(value).replace(":", ",").split(","))
        except ValueError:
            self.fail(f"{value!r} is not {self.n or 'a list of'} numbers ({self.name})", param, ctx)
        if self.n is not None and len(vals) != self.n:
            self.fail(f"{value!r} needs {self.n} numbers ({self.name})", param, ctx)
        if self.ordered and not 0 <= vals[0] < vals[1]:
            self.fail(f"{value!r}: need 0 <= LO < HI", param, ctx)
        return vals


BAND = Numbers(2, "LO:HI")
XYZ = Numbers(3, "X,Y,Z")


class ListOf(click.ParamType):
    """A comma-separated list (``1,2,4``; empty items dropped, ``''`` is the empty list) of ``cast``
    values, each at least ``lo`` when given."""

    def __init__(self, cast=str, metavar: str = "A,B,...", lo: float | None = None):
        self.cast, self.name, self.lo = cast, metavar, lo

    def get_metavar(self, param, ctx=None):
        return self.name

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        kind = {int: "whole numbers", float: "numbers"}.get(self.cast, "names")
        try:
            out = tuple(self.cast(x.strip()) for x in str(value).split(",") if x.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of {kind}", param, ctx)
        for x in out:
            if self.lo is not None and x < self.lo:
                self.fail(f"{value!r}: {x} must be at least {self.lo:g}", param, ctx)
        return out


NAMES = ListOf(str, "NAME,...")
INTS = ListOf(int, "N,...")
FLOATS = ListOf(float, "X,...")


class Scenarios(click.ParamType):
    """``all``, or scenario numbers and names separated by commas -> sorted scenario numbers."""

    name = "SCENARIOS"

    def convert(self, value, param, ctx):
        from acam.dataset.scenarios import parse_scenarios

        if isinstance(value, list):
            return value
        try:
            return parse_scenarios(value, f"--{param.name.replace('_', '-')}" if param else "scenarios")
        except AcamError as exc:
            raise click.ClickException(str(exc)) from None


class TrainSets(click.ParamType):
    """Training sets of ``learn reproduce``: each ``all`` or one scenario (number or name) -> ``'all'``, ``'1'``..."""

    name = "SETS"

    def convert(self, value, param, ctx):
        from acam.dataset.scenarios import SCENARIO_NUMBERS

        if isinstance(value, tuple):
            return value
        return tuple(str(SCENARIO_NUMBERS.get(s.strip().lower(), s.strip().lower())) for s in str(value).split(","))


class Source(click.ParamType):
    """A simulated source ``KIND[:ARGS]@X,Y,Z[*AMP]`` (:meth:`acam.beamform.simulate.SourceSpec.parse`)."""

    name = "KIND[:ARGS]@X,Y,Z[*AMP]"

    def convert(self, value, param, ctx):
        from acam.beamform.simulate import SourceSpec

        if isinstance(value, SourceSpec):
            return value
        try:
            return SourceSpec.parse(value)
        except AcamError as exc:
            raise click.ClickException(str(exc)) from None


class PerModel(click.ParamType):
    """A number with overrides by model (``30,video=5``) -> ``(default, {model: n})``
    (:func:`acam.learn.reproduce.per_model`); ``required``: the default number must be there."""

    def __init__(self, what: str, required: bool = False):
        self.what, self.required, self.name = what, required, "N[,MODEL=N...]"

    def convert(self, value, param, ctx):
        from acam.learn.reproduce import per_model

        if isinstance(value, tuple):
            return value
        n, by = per_model(value, self.what)
        if n is None and self.required:
            self.fail(f"{value!r} needs a default number of {self.what} first (e.g. 30,video=5)", param, ctx)
        return n, by


# --------------------------------------------------------------------------------- shared options
PROGRESS_HELP = ("Progress (default: on - a bar on a terminal, otherwise a plain line every "
                 "$ACAM_PROGRESS_SECONDS, default 30 s).")


def _options(*options):
    """One decorator applying ``options`` in the order written."""
    def deco(f):
        for opt in reversed(options):
            f = opt(f)
        return f
    return deco


progress_option = click.option("--progress/--no-progress", default=None, help=PROGRESS_HELP)


def device_option(default: str = "auto", help: str | None = None):
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=default,
                        show_default=True, help=help)


# --scheduler / --workers / --retries, shared by every command that fans out (acam.core.tasks)
scale_options = _options(
    click.option("--scheduler", default=None, metavar="ADDRESS|local|local-cuda",
                 help="Dask scheduler (tcp://host:8786) to run the tasks on; 'local' = a local "
                      "cluster, one worker per core; 'local-cuda' = one worker per GPU (dask-cuda) "
                      "(default: run here, one task after another)."),
    click.option("--workers", type=int, default=None, help="Worker processes of a local Dask cluster."),
    click.option("--retries", default=2, show_default=True, help="Retries of a failing task before it is reported."),
)


def _progress(flag):
    from acam.core.progress import wanted

    return wanted(flag)


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def _command_line() -> str:
    return " ".join(["acam", *sys.argv[1:]])


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acam")
def acam():
    """acam - an acoustic camera toolkit: beamform many-microphone recordings into acoustic
    images (GPU or CPU), and learn from them.

    \b
    Start here:   beamform demo          (simulate -> beamform -> picture, in ./acam-demo)
    Formats:      see README.md, "File formats"
    """


# --------------------------------------------------------------------------------------- beamform
@acam.group("beamform", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="beamform")
def beamform_group():
    """Filter-and-sum beamforming: raw recordings (HDF5) -> acoustic cubes (HDF5) -> pictures.

    \b
      beamform simulate -o raw.h5              a pyroomacoustics recording, default 128-mic array
      beamform run raw.h5 --bins 512 -o cube.h5
      beamform show cube.h5 -o overlay.png     heat map (900-6400 Hz) over the video frame
      beamform demo                            all three on a built-in scene
    """


@beamform_group.command("simulate")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Raw recording to write (.h5).")
@click.option("--array", "array_file", type=click.Path(dir_okay=False),
              help="Array geometry (.xml Acoular, .csv, .npy, .h5); default: the built-in 128-mic layout.")
@click.option("--source", "sources", multiple=True, type=Source(),
              help="A source, repeatable: noise@0,0,2 | tone:2000@-1,0,3 (the frequency is required) | "
                   "chirp:500-6000@0.5,0.2,2.5 | "
                   "burst@... | wav:FILE@...  Positions in metres, camera frame (x right, y up, z forward). "
                   "Default: a noise source and a chirp.")
@click.option("--duration", default=2.0, show_default=True, help="Seconds.")
@click.option("--room", type=click.Choice(["anechoic", "shoebox"]), default="anechoic", show_default=True)
@click.option("--room-dim", type=XYZ, default="7,6,3", show_default=True,
              help="Shoebox size in the room's own frame, metres: width x, depth y (the array looks along "
                   "+y), height z. Unlike --source (camera frame, y up), the room frame is z-up.")
@click.option("--rt60", default=0.5, show_default=True, help="Shoebox reverberation time, seconds.")
@click.option("--absorption", type=float, default=None, help="Wall energy absorption 0-1, instead of --rt60.")
@click.option("--max-order", type=int, default=None, help="Image-source order (default: from RT60, at most 12).")
@click.option("--array-pos", type=XYZ, default=None, help="Array centre in the room frame x,y,z (z up; default: centred in "
                                                 "x, 1 m from the y = 0 wall, 1.5 m high).")
@click.option("--noise-snr", type=float, default=None, help="Add diffuse noise at this SNR (dB).")
@click.option("--sample-rate", default=SAMPLE_FREQ, show_default=True, help="Hz (the sensor's rate).")
@click.option("--frame-rate", default=12.0, show_default=True, help="Video frames per second.")
@click.option("--seed", default=0, show_default=True, help="Seed of the source signals and noise.")
def simulate_cmd(output, array_file, sources, duration, room, room_dim, rt60, absorption, max_order, array_pos,
                 noise_snr, sample_rate, frame_rate, seed):
    """Simulate a recording of the array with pyroomacoustics and write it as a raw .h5 file."""
    from acam.beamform.geometry import ArrayGeometry
    from acam.beamform.simulate import Scene, simulate_file

    scene = Scene(duration=duration, sample_freq=sample_rate, room=room, room_dim=room_dim, rt60=rt60,
                  absorption=absorption, max_order=max_order, array_position=array_pos, noise_snr=noise_snr,
                  seed=seed, frame_rate=frame_rate, **({"sources": sources} if sources else {}))
    geom = ArrayGeometry.from_file(array_file) if array_file else None
    warn = (lambda line: click.echo(f"warning: {line}", err=True)) if sources else None
    rec = simulate_file(output, scene, geom, hfov=HFOV, vfov=VFOV, warn=warn,
                        attrs={"generator": f"acam {__version__}"})
    n, m = rec["n_samples"], rec["n_channels"]
    click.echo(f"wrote {output}: {m} channels x {n} samples ({n / sample_rate:.2f} s at {sample_rate:g} Hz), "
               f"{rec['n_sources']} source(s), {room}")


@beamform_group.command("run")
@click.argument("raw", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(),
              help="Cube file to write (default: RAW's name + .cube.h5); a folder for several recordings.")
@click.option("--bins", default=512, show_default=True, help="Frequency bins from 0 Hz to Nyquist (FFT of 2*BINS points).")
@click.option("--focus", default=2.0, show_default=True, help="Focus distance, metres.")
@click.option("--hfov", type=float, default=None, help="Horizontal field of view, degrees (default: file's, else 60).")
@click.option("--vfov", type=float, default=None, help="Vertical field of view, degrees (default: file's, else 45).")
@click.option("--rows", default=IMAGE_ROWS, show_default=True, help="Acoustic image rows.")
@click.option("--cols", default=IMAGE_COLS, show_default=True, help="Acoustic image columns.")
@click.option("--speed-of-sound", default=SPEED_OF_SOUND, show_default=True, help="m/s.")
@click.option("--window", default="boxcar", show_default=True, help="boxcar | hann | hamming | blackman | tukey[:ALPHA].")
@device_option(help="auto uses the GPU when CuPy sees one.")
@click.option("--precision", type=click.Choice(["single", "double", "bf16", "bf16x3"]), default="single",
              show_default=True, help="Steering product: complex64 | complex128 | bfloat16 operands with float32 "
                                      "accumulation | three bfloat16 products (about float32 accuracy); bf16 and "
                                      "bf16x3 need PyTorch (the 'learn' extra); errors in benchmarks/RESULTS.md.")
@click.option("--dtype", "out_dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="Cube storage type.")
@click.option("--array", "array_file", type=click.Path(dir_okay=False), help="Override the file's microphone positions.")
@click.option("--frame-rate", type=float, default=None, help="Override the file's frame rate (default: file's, else 12).")
@click.option("--block-frames", type=int, default=None, help="Frames per block (memory vs speed; default 128 CPU, 256 GPU).")
@click.option("--threads", type=int, default=None, help="CPU worker threads (default: all usable cores).")
@click.option("--tolerance", default=0.0, show_default=True,
              help="0: exact. >0: low-rank steering truncated at this fraction of each bin's largest "
                   "singular value (error bound in the README); e.g. 1e-3.")
@click.option("--steering", type=click.Choice(list(FORMULATIONS)), default=DEFAULT_FORMULATION, show_default=True,
              help="Steering formulation (Sarradj 2012, Acoular's names): 'inverse' (II) reads a source's level at "
                   "the array centre; 'true level' (III) too, with other sidelobes; 'classic' (I); 'true location' (IV).")
@click.option("--frames-per-task", type=int, default=None,
              help="Split each recording into tasks of this many frames (rounded up to whole blocks), "
                   "written into one cube in order (default: one task per recording).")
@click.option("--overwrite", is_flag=True, help="Redo cubes that exist (default: skip those made with the same "
                                               "settings from the recording as it is now, refuse the others).")
@scale_options
@progress_option
def run_cmd(raw, output, bins, focus, hfov, vfov, rows, cols, speed_of_sound, window, device, precision,
            out_dtype, array_file, frame_rate, block_frames, threads, tolerance, steering, frames_per_task, overwrite,
            scheduler, workers, retries, progress):
    """Beamform RAW (time_data + mic_positions) into an acoustic cube: one rows x cols x BINS power
    image per video frame.

    \b
    RAW may be several files or a quoted glob; then -o is a folder and each recording is one task:
      beamform run 'recordings/*.h5' -o cubes/                      here, one after the other
      beamform run 'recordings/*.h5' -o cubes/ --workers 4          a local Dask cluster
      beamform run 'recordings/*.h5' -o cubes/ --scheduler tcp://head:8786
    """
    import time

    from acam.beamform.batch import beamform_one, default_output, expand_inputs, is_batch
    from acam.beamform.geometry import ArrayGeometry
    from acam.beamform.pipeline import RunSettings
    from acam.core.tasks import check_retries

    settings = RunSettings(bins=bins, focus=focus, hfov=hfov, vfov=vfov, rows=rows, cols=cols,
                           speed_of_sound=speed_of_sound, window=window, device=device,
                           precision=precision, out_dtype=out_dtype, frame_rate=frame_rate,
                           block_frames=block_frames, threads=threads, tolerance=tolerance, steering=steering)
    check_retries(retries)
    raws = expand_inputs(raw)
    geom = ArrayGeometry.from_file(array_file) if array_file else None
    show = _progress(progress)
    if is_batch(raws, output, scheduler, workers, frames_per_task):
        return _run_many(raws, output, settings, geom, scheduler, workers, frames_per_task, retries,
                         overwrite, show)
    raw = raws[0]
    output = output or default_output(raw)
    t0 = time.perf_counter()
    rep = beamform_one(raw, output, settings, geom, overwrite, show)
    if rep is None:
        click.echo(f"{output} is up to date (same settings, made from {raw} as it is now); skipped")
        return
    dt = time.perf_counter() - t0
    if rep.note:
        click.echo(f"note: {rep.note}", err=True)
    click.echo(f"wrote {output}: {rep.n_frames} frames x {rows} x {cols} x {bins} bins on {rep.device} "
               f"({rep.precision}) in {dt:.2f} s ({rep.seconds_of_audio / dt:.1f}x real time, whole command "
               f"after start-up)")
    click.echo(f"  {rep.rates()}")


def _run_many(raws, output, settings, geom, scheduler, workers, frames_per_task, retries, overwrite, show):
    from acam.beamform.batch import beamform_many
    from acam.core.tasks import local_workers

    if output is None:
        raise click.UsageError("several recordings (or --scheduler/--workers/--frames-per-task) need -o FOLDER")
    if os.path.exists(output) and not os.path.isdir(output):
        raise click.UsageError(f"-o {output!r} is a file; several recordings need a folder")
    local_workers(workers, scheduler)          # a bad --workers fails before anything is made
    res = beamform_many(raws, output, settings, geom, scheduler, workers, frames_per_task, retries,
                        overwrite, show, click.echo)
    rep = res.report
    if res.skipped:
        click.echo(f"{len(res.skipped)} cube(s) already up to date, skipped")
    click.echo(rep.summary(res.tasks, "s of audio"))
    if rep.wall > 0 and res.seconds_of_audio > 0:
        click.echo(f"wrote {len(res.outputs)} cube(s) into {output}: {res.seconds_of_audio:.1f} s of audio "
                   f"in {rep.wall:.1f} s ({res.seconds_of_audio / rep.wall:.1f}x real time)")
    if rep.failed:
        hint = f"; {len(res.exist)} existing cube(s) were made otherwise: --overwrite replaces them" if res.exist else ""
        raise click.ClickException(f"{len(rep.failed)} of {len(raws)} recording(s) failed (listed above){hint}")


@beamform_group.command("show")
@click.argument("cube", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="PNG to write (default: CUBE's name + .png).")
@click.option("--frame", type=int, default=None, help="Frame to draw (default: the mean of all frames).")
@click.option("--band", type=Numbers(2, "LO:HI", ordered=True), default="900:6400", show_default=True,
              help="LO:HI Hz summed per pixel.")
@click.option("--range", "dyn_range", default=15.0, show_default=True,
              help="Dynamic range shown, dB: quieter pixels stay uncoloured.")
@click.option("--absolute", is_flag=True, help="Colour scale in dB SPL (re 20 uPa) instead of dB re the peak "
                                               "(needs a recording in Pa, as simulated ones are).")
@click.option("--video", type=click.Path(dir_okay=False), help="Raw file with a video dataset (default: the cube's source file).")
@click.option("--animate", "animation", type=click.Path(dir_okay=False), default=None,
              help="Also write the acoustic video: the heat map over every frame (.gif; .mp4 with the "
                   "'video' extra).")
@click.option("--fps", type=float, default=None, help="Animation frames per second (default: the cube's, real time).")
@progress_option
def show_cmd(cube, output, frame, band, dyn_range, absolute, video, animation, fps, progress):
    """Draw CUBE's band energy as a heat map over the video frame (or a plain frame) into a PNG:
    azimuth and elevation in degrees, metres on the focus plane, the loudest pixel and the true
    sources; with --animate, every frame into an animation."""
    from acam.beamform.batch import default_output
    from acam.beamform.plot import show_cube

    if animation is None or output is not None:
        output = output or default_output(cube, ".png")
        info = show_cube(cube, output, frame, band, dyn_range, video, absolute=absolute, animation=animation)
        click.echo(f"wrote {output}: peak at {info['text']}")
    if animation is not None:
        from acam.beamform.animate import animate_cube

        res = animate_cube(cube, animation, band, dyn_range, video, absolute, fps,
                           progress=_progress(progress))
        click.echo(f"wrote {animation}: {res['frames']} frames of {res['width']} x {res['height']} pixels "
                   f"at {res['fps']:g} frames/s")


@beamform_group.command("demo")
@click.option("-o", "--outdir", default="acam-demo", show_default=True, type=click.Path(file_okay=False))
@device_option()
def demo_cmd(outdir, device):
    """Simulate a two-source scene, beamform it (512 bins) and draw the picture - all in OUTDIR."""
    os.makedirs(outdir, exist_ok=True)
    raw, cube, png = (os.path.join(outdir, n) for n in ("raw.h5", "cube.h5", "overlay.png"))
    ctx = click.get_current_context()
    ctx.invoke(simulate_cmd, output=raw)
    ctx.invoke(run_cmd, raw=(raw,), output=cube, device=device, tolerance=0.0, overwrite=True)
    ctx.invoke(show_cmd, cube=cube, output=png)
    click.echo(f"\nThe picture is {os.path.abspath(png)}")


# --------------------------------------------------------------------------------------- geometry
@beamform_group.group("geometry", cls=_Group)
def geometry_group():
    """Make, judge and compare microphone-array layouts.

    \b
      beamform geometry make spiral --mics 128 --aperture 0.45 -o spiral.xml
      beamform geometry make optimised --mics 128 --aperture 0.45 --band 500:6000 --seed 0 -o opt.xml
      beamform geometry report opt.xml --freqs 1000,2000,4000,6000 -o opt.png
      beamform geometry compare grid.xml spiral.xml opt.xml -o compare.png
    """


def _layouts() -> list:
    from acam.beamform.design import LAYOUTS

    return list(LAYOUTS)


@geometry_group.command("make")
@click.argument("kind", type=click.Choice(_layouts()))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help=".xml (Acoular), .csv or .npy")
@click.option("--mics", default=128, show_default=True)
@click.option("--aperture", default=0.45, show_default=True, help="Side of the square, metres.")
@click.option("--min-spacing", default=0.025, show_default=True, help="Metres (random, optimised).")
@click.option("--clearance", default=0.035, show_default=True, help="Free radius at the centre for the lens, metres.")
@click.option("--arms", default=8, show_default=True, help="Spiral arms.")
@click.option("--band", type=BAND, default="500:6000", show_default=True, help="LO:HI Hz the optimiser works on.")
@click.option("--iterations", default=20000, show_default=True, help="Optimiser moves.")
@click.option("--seed", default=0, show_default=True)
@progress_option
def geometry_make(kind, output, mics, aperture, min_spacing, clearance, arms, band, iterations, seed, progress):
    """Make a layout: grid (uniform rectangular), spiral (multi-arm log), sunflower (Fermat),
    random (aperiodic, minimum spacing) or optimised (lowest worst sidelobe over --band)."""
    from acam.beamform.design import LayoutOptions, make_layout

    options = LayoutOptions(n_mics=mics, aperture=aperture, min_spacing=min_spacing, clearance=clearance, arms=arms,
                            band=band, iterations=iterations, seed=seed)
    g = make_layout(kind, options, progress=_progress(progress))
    g.save(output)
    click.echo(f"wrote {output}: {g.n_mics} microphones, min spacing {g.min_spacing * 1000:.1f} mm")


def _report(files, freqs, band, output, hfov, vfov, focus, progress=None):
    from acam.beamform.grid import CameraGrid
    from acam.beamform.report import report_layouts

    report_layouts(files, freqs, band, output, CameraGrid(hfov=hfov, vfov=vfov, focus=focus),
                   progress=_progress(progress), echo=click.echo)
    if output:
        click.echo(f"wrote {output}")


report_options = _options(
    click.option("--freqs", type=Numbers(None, "F,..."), default="1000,2000,4000,6000", show_default=True,
                 help="Hz, comma separated."),
    click.option("--band", type=BAND, default="500:6000", show_default=True, help="LO:HI Hz for the worst sidelobe."),
    click.option("-o", "--output", type=click.Path(dir_okay=False), help="PNG figure."),
    click.option("--hfov", default=HFOV, show_default=True),
    click.option("--vfov", default=VFOV, show_default=True),
    click.option("--focus", default=2.0, show_default=True),
    progress_option,
)


@geometry_group.command("report")
@click.argument("array_file", type=click.Path(dir_okay=False))
@report_options
def geometry_report(array_file, freqs, band, output, hfov, vfov, focus, progress):
    """PSF maps, -3 dB beam width, peak sidelobe level and grating-lobe onset of one layout."""
    _report([array_file], freqs, band, output, hfov, vfov, focus, progress)


@geometry_group.command("compare")
@click.argument("array_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@report_options
def geometry_compare(array_files, freqs, band, output, hfov, vfov, focus, progress):
    """The same figures for several layouts in one table and one figure."""
    _report(array_files, freqs, band, output, hfov, vfov, focus, progress)


# ---------------------------------------------------------------------------------------- dataset
@acam.group("dataset", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def dataset_group():
    """The audio-visual action dataset: simulated end to end, or imported from real files.

    \b
      acam dataset build --preset tiny -o data/tiny     seconds; what the tests use
      acam dataset build --preset small -o data/small   minutes on a laptop CPU
      acam dataset info data/small                      counts per action/scenario/subject/split
      acam dataset diagnose data/tiny -o diag.json      SNR/SIR mono vs source pixel, RT60, levels
      acam dataset mfcc cube.h5 -o mfcc.h5              512 bins -> 12 MFCC per pixel
      acam dataset import-tfrecord DIR -o data/real     the authors' record format
      acam dataset import-dc DIR -o raw.h5              the sensor's raw .dc frame files
    """


@dataset_group.command("build")
@click.option("--preset", type=click.Choice(["tiny", "small", "paper"]), default="tiny", show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Dataset folder.")
@click.option("--seed", default=0, show_default=True)
@device_option()
@click.option("--cubes", type=click.Choice(["float16", "float32"]), default=None,
              help="Also store full 512-bin cubes (3.5 MB per frame in float32).")
@click.option("--keep-raw", is_flag=True, help="Also store the 128-channel recordings.")
@click.option("--limit", type=int, default=None, help="Build at most this many missing sequences.")
@click.option("--only", multiple=True, metavar="NAME", help="Build only this sequence (repeatable), e.g. a02_s3_p00_r0.")
@click.option("--physics", type=click.Choice(["1", "2"]), default="2", show_default=True,
              help="2: cited levels, sensor noise, ambience, competing sources, the stated RT60; 1: the first simulation.")
@click.option("--sounds", type=click.Path(file_okay=False), default=None,
              help="Folder of recordings DIR/<action>/*.wav played instead of the synthesised sounds.")
@scale_options
@progress_option
def dataset_build(preset, output, seed, device, cubes, keep_raw, limit, only, physics, sounds, scheduler, workers,
                  retries, progress):
    """Simulate, beamform and store a dataset; resumes where an interrupted build stopped.

    Each sequence is one task: --workers N builds on a local Dask cluster, --scheduler ADDRESS on
    any Dask cluster whose workers see the output folder.  The files do not depend on where they
    were built (every sequence has its own seed)."""
    import time

    from acam.dataset.build import build
    from acam.dataset.store import Dataset

    t0 = time.perf_counter()
    build(output, preset, seed, device, cubes, keep_raw, _progress(progress),
          limit, scheduler, workers, retries, click.echo, physics=int(physics), sounds=sounds, only=list(only) or None)
    info = Dataset(output).info()
    click.echo(f"{output}: {info['built']}/{info['sequences']} sequences, {info['seconds']:.0f} s of audio, "
               f"{info['bytes'] / 2 ** 20:.1f} MiB, {time.perf_counter() - t0:.1f} s")


@dataset_group.command("diagnose")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the figures as JSON here and a PNG beside it.")
@click.option("--limit", type=int, default=None, help="At most this many sequences (in manifest order).")
@device_option("cpu", help="Where the beamformer runs on the re-rendered parts.")
def dataset_diagnose(folder, output, limit, device):
    """Measure what spatial filtering can do on a dataset, without training: single-microphone and
    source-pixel SNR and SIR, levels, the rendered RT60, per scenario and action."""
    from acam.dataset.diagnose import diagnose, format_table, write

    report = diagnose(folder, limit, device, progress=lambda name: click.echo(f"  {name}", err=True), output=output)
    click.echo(format_table(report))
    if output:
        png = write(report, output)
        click.echo(f"wrote {output} and {png}")


@dataset_group.command("info")
@click.argument("folder", type=click.Path(file_okay=False))
def dataset_info(folder):
    """Counts per action, scenario, subject and split, and the size on disk."""
    from acam.dataset.scenarios import scenario_label
    from acam.dataset.sounds import ACTIONS
    from acam.dataset.store import Dataset

    d = Dataset(folder)
    info = d.info()
    click.echo(f"{folder}: {info['built']} of {info['sequences']} sequences built, {info['frames']} frames "
               f"({info['seconds']:.0f} s), {info['bytes'] / 2 ** 20:.1f} MiB")
    names = d.manifest.get("actions", list(ACTIONS))
    click.echo("per action:   " + ", ".join(f"{names[int(k)]} {v}" for k, v in info["per_action"].items()))
    click.echo("per scenario: " + ", ".join(f"{scenario_label(k)}: {v}" for k, v in info["per_scenario"].items()))
    click.echo("per subject:  " + ", ".join(f"{k}: {v}" for k, v in info["per_subject"].items()))
    click.echo("per split:    " + ", ".join(f"{k}: {info['per_split'].get(k, 0)}" for k in ("train", "val", "test")))


@dataset_group.command("mfcc")
@click.argument("cube", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--units", type=click.Choice(["lab", "cube"]), default="lab", show_default=True,
              help="lab: undo the cube's power normalisation first, as the lab's code sees |rfft|^2.")
@click.option("--true-bins", is_flag=True, help="Place mel filters on the cube's real bin frequencies "
              "instead of the lab code's 12 800 Hz assumption.")
@device_option()
def dataset_mfcc(cube, output, units, true_bins, device):
    """Compress a cube file (n, 36, 48, 512) into an MFCC cube (n, 36, 48, 12)."""
    from acam.dataset.mfcc import LAB_RATE
    from acam.dataset.mfcc_file import mfcc_file

    n = mfcc_file(cube, output, units, None if true_bins else LAB_RATE, device)
    click.echo(f"wrote {output}: {n} frames x 12 coefficients per pixel")


@dataset_group.command("import-tfrecord")
@click.argument("src", type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Dataset folder.")
def dataset_import_tfrecord(src, output):
    """Import the authors' GZIP TFRecord SequenceExamples (no TensorFlow needed)."""
    from acam.dataset.importers import import_tfrecord

    m = import_tfrecord(src, output)
    click.echo(f"wrote {output}: {len(m['sequences'])} sequences")


@dataset_group.command("import-dc")
@click.argument("src", type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Raw recording (.h5).")
@click.option("--array", "array_file", type=click.Path(dir_okay=False), help="The sensor's microphone positions.")
@click.option("--bad-mics", type=ListOf(int, "N,..."), default="79,105", show_default=True,
              help="0-based broken microphones ('' for none).")
def dataset_import_dc(src, output, array_file, bad_mics):
    """Concatenate the sensor's raw .dc frame files (int32 128 x 1024) into a raw recording."""
    from acam.beamform.geometry import ArrayGeometry
    from acam.beamform.sensor import FRAME_RATE
    from acam.dataset.importers import import_dc

    n = import_dc(src, output, ArrayGeometry.from_file(array_file) if array_file else None, list(bad_mics))
    click.echo(f"wrote {output}: {n} frames ({n / FRAME_RATE:.1f} s)")


# ------------------------------------------------------------------------------------------ bench
@acam.group("bench", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def bench_group():
    """Throughput benchmarks: ours against the machine's peak and the peers, in one run.

    \b
      acam bench beamform                                  compute, end to end, plain NumPy baseline
      acam bench beamform --tolerances 1e-3 --precisions bf16,bf16x3   every goal of issue 16
      acam bench beamform --peers --sweep mics,grid,bins,frames -o bench.json
      acam bench all -o benchmarks/results/<machine>.json  every heavy step
      acam bench scale                                     files/s on 1, 2, 4 local Dask workers
      acam bench report benchmarks/results/*.json -o report.md
      acam bench gpu-check -o OUT                          the GPU validation (parity, peak, overlap)
    """


@bench_group.command("beamform")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="JSON file with every figure.")
@click.option("--peers", is_flag=True, help="Also time Acoular (if installed) and pyroomacoustics.")
@click.option("--sweep", type=NAMES, default="", help="Comma-separated: mics,grid,bins,frames (compute step), length (whole command: time and peak memory).")
@click.option("--seconds", type=float, default=None, help="Recording length for the end-to-end runs (default 30).")
@click.option("--repeats", type=int, default=None, help="Timed runs per figure (default 5, 3 for the expensive ones).")
@click.option("--tolerances", type=FLOATS, default="", help="Low-rank steering side by side, e.g. 1e-2,1e-3,1e-4: compute step, "
                                               "error, and the whole command with an empty and a warm cache.")
@click.option("--precisions", type=NAMES, default="", help="Reduced precision side by side with single, e.g. bf16,bf16x3: "
                                               "speed and error against float64 in the same run (needs PyTorch).")
@device_option()
@click.option("--smoke", is_flag=True, help="A tiny configuration that only checks the benchmark runs.")
def bench_beamform(output, peers, sweep, seconds, repeats, tolerances, precisions, device, smoke):
    """The beamformer: machine peak, compute step, end to end, baselines (and peers, sweeps, low-rank,
    precision modes), each goal of the project against its figure."""
    from acam.benchmarks.bench_beamform import run_beamform

    run_beamform(smoke=smoke, seconds=seconds, output=output, device=device, repeats=repeats, peers=peers,
                 sweeps=sweep, tolerances=tolerances, precisions=precisions, command=_command_line())


@bench_group.command("all")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="JSON file with every figure.")
@device_option()
@click.option("--smoke", is_flag=True)
def bench_all(output, device, smoke):
    """Every heavy step: beamformer with peers, sweeps, low-rank and precision modes, MFCC, dataset,
    training, distillation, scale-out."""
    from acam.benchmarks.bench_beamform import run_beamform

    run_beamform(smoke=smoke, output=output, device=device, peers=True,
                 sweeps=("mics", "grid", "bins", "frames", "length"), tolerances=(1e-2, 1e-3, 1e-4),
                 precisions=("bf16", "bf16x3"), steps=True, scaling=(1, 2, 4), command=_command_line())


@bench_group.command("scale")
@click.option("--workers", type=INTS, default="1,2,4", show_default=True, help="Local Dask cluster sizes.")
@click.option("--files", default=16, show_default=True, help="Recordings (one task each).")
@click.option("--seconds", default=2.0, show_default=True, help="Length of each recording.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="JSON file with every figure.")
@click.option("--smoke", is_flag=True, help="A tiny configuration that only checks the benchmark runs.")
def bench_scale(workers, files, seconds, output, smoke):
    """Files per second on 1, 2, 4 local Dask workers against the ideal line; overhead per task."""
    from acam.benchmarks.scaling import run_scaling

    run_scaling(workers=workers, files=files, seconds=seconds, output=output, smoke=smoke, command=_command_line())


@bench_group.command("gpu-check")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Folder for gpu_check.json and gpu_check.md (default: $OUT, else gpu-check).")
@click.option("--skip-e2e", is_flag=True, help="Leave out the 30 s end-to-end runs.")
def bench_gpu_check(output, skip_e2e):
    """The GPU validation: parity with the CPU (kernels at odd sizes, whole files, MFCC), cuBLAS peak,
    batched GEMM, transfers and their overlap, end to end (needs CuPy and a GPU)."""
    from acam.benchmarks.gpu_check import run_gpu_check

    status = run_gpu_check(out=output, skip_e2e=skip_e2e)
    if status:
        raise click.exceptions.Exit(status)


@bench_group.command("report")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Markdown file (plots beside it).")
def bench_report(files, output):
    """Markdown tables (and log-log sweep plots) from benchmark JSON files."""
    from acam.benchmarks.report import report

    md, png = report(list(files), output)
    click.echo(md.rstrip())
    if output:
        click.echo(f"wrote {output}" + (f" and {png}" if png else ""))


# ------------------------------------------------------------------------------------------ learn
@acam.group("learn", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="learn")
def learn_group():
    """Teachers, students and distillation on a dataset folder (needs the 'learn' extra: torch).

    \b
      learn train --model dualcamnet --data data/small --train-on all -o runs/dcn
      learn train --model hearnet --data data/small -o runs/hear_g
      learn distill --teacher runs/dcn --student hearnet --lambda 0.5 --temperature 1 -o runs/hear_d
      learn evaluate runs/hear_d --test-on 1,2,3
      learn reproduce --data data/tiny -o runs/t --epochs 1
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise click.ClickException("the learn commands need PyTorch: pip install -e '.[learn]'") from None


SCENARIO_HELP = "all, or numbers or names separated by commas: 1 anechoic, 2 office, 3 outdoor"


def _model_names():
    from acam.learn.names import MODELS, STUDENTS

    return MODELS, STUDENTS


MODELS, STUDENTS = _model_names()

_train_options = [
    click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset folder."),
    click.option("--train-on", type=Scenarios(), default="all", show_default=True,
                 help=f"Scenarios to train on: {SCENARIO_HELP}."),
    click.option("--epochs", default=100, show_default=True,
                 help="Epochs in all; raise it to train a resumed run further."),
    click.option("--batch-size", default=32, show_default=True),
    click.option("--lr", type=float, default=None, help="Learning rate (default: the paper's Table 5)."),
    click.option("--seed", default=0, show_default=True),
    click.option("--crops", type=int, default=None, help="Crops per sequence (default 30 for teachers, 6 for students)."),
    click.option("--weight-decay", default=5e-4, show_default=True,
                 help="L2 on the weights the authors regularised (students' and ResNet's convs; none on DualCamNet)."),
    click.option("--split", type=click.Choice(["stratified", "blocks"]), default="stratified", show_default=True,
                 help="stratified: by recording, stratified by scenario x action; blocks: the authors' 10 s blocks."),
    click.option("--keep", type=click.Choice(["best", "all"]), default="best", show_default=True,
                 help="best: drop last.pt once the run is finished; all: keep it (to raise --epochs later)."),
    device_option(),
    click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Run folder."),
    progress_option,
]


def _done(output, res):
    click.echo(f"{output}: best validation accuracy {res['best_val_acc']:.3f} after {_count(res['epochs'], 'epoch')}")


@learn_group.command("train")
@click.option("--model", required=True, type=click.Choice(list(MODELS)))
@click.option("--init", type=click.Path(dir_okay=False), help="Local weights (torchvision ResNet-50: the video "
              "models then freeze the backbone and train the classifier, as the authors; SoundNet...).")
@click.option("--input", "inputs", type=click.Choice(["mfcc_mono", "spectrogram_beam"]), default=None,
              help="A control's input instead of the model's own (DualCamNet: mfcc_mono; HearNet: spectrogram_beam).")
@click.option("--teacher-loss", type=click.Choice(["frame", "clip"]), default="frame", show_default=True,
              help="Frame-wise teachers: loss per frame (the authors') or on the frames' mean logits.")
@_options(*_train_options)
def learn_train(model, init, inputs, teacher_loss, data, train_on, epochs, batch_size, lr, seed, crops,
                weight_decay, split, keep, device, output, progress):
    """Train a teacher or a student on ground-truth labels (resumes an interrupted run).

    \b
    Several processes (DistributedDataParallel; NCCL on GPUs, gloo on CPUs):
      torchrun --nproc-per-node 4 -m acam.learn train --model resnet50 --data data/paper -o runs/r50
    --batch-size stays the global batch (split evenly over the processes), so the run equals a
    single-process one up to floating-point summation order; rank 0 writes the run folder."""
    from acam.learn.runs import train_config
    from acam.learn.train import fit, is_main_process

    cfg = train_config(model=model, data=data, train_on=train_on, lr=lr, epochs=epochs, batch_size=batch_size,
                       seed=seed, crops_per_sequence=crops, weight_decay=weight_decay, device=device,
                       inputs=inputs, teacher_loss=teacher_loss, split=split, init=init)
    res = fit(cfg, output, _progress(progress), keep=keep)
    if is_main_process():
        _done(output, res)


@learn_group.command("distill")
@click.option("--teacher", required=True, type=click.Path(file_okay=False), help="Teacher run folder.")
@click.option("--student", required=True, type=click.Choice(list(STUDENTS)))
@click.option("--lambda", "lam", default=0.5, show_default=True, help="Weight of the teacher's soft labels.")
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--grid", is_flag=True, help="Grid-search lr in {1e-3, 1e-4}, T in {1, 2, 5}, lambda in "
              "{0.25, 0.5, 0.75} on the validation split; keep the best run in OUTPUT.")
@_options(*_train_options[1:])
@click.option("--data", type=click.Path(file_okay=False), help="Dataset folder (default: the teacher's).")
@scale_options
def learn_distill(teacher, student, lam, temperature, grid, train_on, epochs, batch_size, lr, seed, crops,
                  weight_decay, split, keep, device, output, progress, data, scheduler, workers, retries):
    """Train a student with the paper's distillation loss (Eq. 1) from a teacher's soft labels.

    With --grid, each of the 18 combinations is one task: --workers N / --scheduler ADDRESS run
    them on a Dask cluster."""
    from acam.learn.runs import distill_config
    from acam.learn.train import fit

    cfg = distill_config(student=student, teacher=teacher, train_on=train_on, data=data, lr=lr, lam=lam,
                         temperature=temperature, epochs=epochs, batch_size=batch_size, seed=seed,
                         crops_per_sequence=crops, weight_decay=weight_decay, device=device, split=split)
    show = _progress(progress)
    if grid:
        from acam.learn.train import grid_search

        res = grid_search(cfg, output, show, scheduler=scheduler, workers=workers, retries=retries, echo=click.echo)
        click.echo(f"grid results in {os.path.join(output, 'grid.csv')}; best: lr {res['lr']:g}, "
                   f"T {res['temperature']:g}, lambda {res['lam']:g}")
    else:
        res = fit(cfg, output, show, keep=keep)
    _done(output, res)


@learn_group.command("transfer")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--layer", default="conv3", show_default=True, help="Student layer whose output is the feature.")
@click.option("--data", required=True, type=click.Path(), help="Folder of class folders of WAVs, or a CSV file,label[,split].")
@click.option("--seconds", default=5.0, show_default=True, help="Crop length fed to the student.")
@click.option("--seed", default=0, show_default=True)
def learn_transfer(run, layer, data, seconds, seed):
    """Judge a student's features on other labelled audio: k-NN (k odd 7..15, chosen on validation)
    and a linear SVM."""
    from acam.learn.transfer import transfer

    r = transfer(run, data, layer, seed, seconds)
    click.echo(f"{r['files']} files, {len(r['classes'])} classes, layer {r['layer']}: "
               f"k-NN (k={r['k']}) test accuracy {r['knn_test_acc']:.3f}, "
               f"linear SVM test accuracy {r['svm_test_acc']:.3f}")


@learn_group.command("evaluate")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--test-on", type=Scenarios(), default="1,2,3", show_default=True,
              help=f"Scenarios to test on: {SCENARIO_HELP}.")
@click.option("--data", type=click.Path(file_okay=False), help="Dataset folder (default: the run's).")
@device_option()
def learn_evaluate(run, test_on, data, device):
    """Accuracy per test cell (own scenario: its test split; unseen scenario: all its sequences),
    with counts, a 95% interval over sequences and confusion matrices (CSV, PNG) into RUN/eval."""
    from acam.learn.evaluate import evaluate_run

    evaluate_run(run, test_on, data, device)
    with open(os.path.join(run, "eval", "accuracy.md"), encoding="utf-8") as f:
        click.echo(f.read().rstrip())
    click.echo(f"confusion matrices in {os.path.join(run, 'eval')}")


def _reproduce_defaults():
    from acam.learn.names import DISTILL_FROM, STUDENTS, TEACHERS

    return ",".join(TEACHERS), ",".join(STUDENTS), ",".join(DISTILL_FROM)


_TEACHERS, _STUDENTS, _DISTILL_FROM = _reproduce_defaults()


@learn_group.command("reproduce")
@click.option("--data", required=True, type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False))
@click.option("--epochs", type=PerModel("epochs", required=True), default="100", show_default=True,
              help="Epochs per run, with overrides by model: e.g. 30,video=5,soundnet=20 (video: R, T, AV). "
                   "Raise it to train resumed runs further.")
@click.option("--seeds", type=ListOf(int, "N,...", lo=0), default="0", show_default=True,
              help="Comma-separated seeds (mean and spread).")
@click.option("--train-sets", type=TrainSets(), default="all,1,2,3", show_default=True,
              help="Training sets, each a scenario (1 anechoic, 2 office, 3 outdoor; number or name) or all.")
@click.option("--teachers", type=NAMES, default=_TEACHERS, show_default=True)
@click.option("--students", type=NAMES, default=_STUDENTS, show_default=True)
@click.option("--distill-from", type=NAMES, default=_DISTILL_FROM, show_default=True,
              help="Teachers the students are distilled from (columns D, R).")
@click.option("--controls", type=NAMES, default="", is_flag=False, flag_value="mono,oracle",
              help="Also the controls: mono (DualCamNet without spatial information), oracle (HearNet on the "
                   "true source's beamformed signal; needs a physics-v2 dataset). Alone: both.")
@click.option("--crops", type=PerModel("crops"), default="", help="Crops per training sequence (default: the "
              "paper's, 30 for teachers, 6 for students), with overrides by model as --epochs: e.g. 6,video=1.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lambda", "lam", default=0.5, show_default=True)
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--weight-decay", default=5e-4, show_default=True)
@click.option("--teacher-loss", type=click.Choice(["frame", "clip"]), default="frame", show_default=True)
@click.option("--split", type=click.Choice(["stratified", "blocks"]), default="stratified", show_default=True)
@click.option("--init", type=click.Path(dir_okay=False), default=None,
              help="ImageNet ResNet-50 weights (torchvision layout) for the video teachers: frozen backbone.")
@click.option("--grid", is_flag=True, help="Choose each student's lr (and T, lambda when distilled) on validation.")
@click.option("--keep", type=click.Choice(["best", "all"]), default="best", show_default=True,
              help="best: only best.pt of finished runs; all: also last.pt (about 3x the disk).")
@device_option()
@scale_options
@progress_option
def learn_reproduce(data, output, epochs, seeds, train_sets, teachers, students, distill_from, controls, crops,
                    batch_size, lam, temperature, weight_decay, teacher_loss, split, init, grid, keep, device,
                    scheduler, workers, retries, progress):
    """The paper's protocol: teachers (D, R, T, AV), students (G, D, R), the controls, cross-scenario
    tables with counts, chance level and intervals (OUTPUT/tables.md).

    Each training run is one task: --workers N runs them on a local Dask cluster, --scheduler
    ADDRESS on any Dask cluster (a distillation starts when its teacher is done).  Re-running the
    same command reuses finished runs and resumes interrupted ones."""
    from acam.learn.reproduce import Protocol, reproduce

    (n_epochs, epochs_by), (n_crops, crops_by) = epochs, crops
    proto = Protocol(epochs=n_epochs, seeds=seeds, train_sets=train_sets, teachers=teachers, students=students,
                     distill_from=distill_from, controls=controls, crops=n_crops, batch_size=batch_size,
                     epochs_by=epochs_by, crops_by=crops_by, lam=lam, temperature=temperature,
                     weight_decay=weight_decay, teacher_loss=teacher_loss, split=split, init=init, grid=grid,
                     keep=keep, device=device)
    reproduce(data, output, proto, _progress(progress),
              scheduler=scheduler, workers=workers, retries=retries, echo=click.echo)
    with open(os.path.join(output, "tables.md"), encoding="utf-8") as f:
        click.echo(f.read().rstrip())
    click.echo(f"tables in {os.path.join(output, 'tables.md')}")


if __name__ == "__main__":  # pragma: no cover
    acam()
