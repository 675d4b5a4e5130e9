"""Safe file handling, shared by every command: what is read, and how outputs are written.

Inputs
    :func:`input_file` accepts regular files only (a FIFO, a device or a folder is refused before
    it is opened, so nothing blocks) and remembers every file a command reads.  :func:`open_h5`
    also follows the HDF5 file's external links, virtual-dataset sources and external raw storage:
    a link or source that does not exist is an error (HDF5 would silently read zeros), and every
    file it names counts as an input too.

Outputs
    :func:`atomic_output` is the one way a file is written: into ``.NAME.<host>.<pid>.<random>.part``
    beside the target, flushed to disk (``fsync``) and renamed over the target only when complete,
    with permissions from the umask like any file the user writes.  It refuses a target that exists
    and is not a regular file (a FIFO, ``/dev/full``, a folder) and a target that is any input the
    command read (compared with ``os.path.samefile`` and ``realpath``, HDF5 link targets included).
    A write that fails for lack of space, a file-size limit or a read-only file system becomes one
    :class:`AcamError` naming the file, and the part file is removed.  Parts left by a writer that
    died (its process is gone) are removed by the next write into the same folder.

Inputs are remembered within an *input scope*: :func:`input_scope` (a context manager and a
decorator) opens one, nested scopes share the outermost.  The command line opens one per command;
library entry points open their own, so they are protected when called from Python too.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import os
import re
import socket
import stat

from .errors import AcamError, FormatError

_SCOPE: contextvars.ContextVar = contextvars.ContextVar("acam_inputs", default=None)


# ------------------------------------------------------------------------------------------- scope
@contextlib.contextmanager
def input_scope():
    """Remember the inputs read inside; outputs written inside refuse to replace any of them."""
    if _SCOPE.get() is not None:
        yield _SCOPE.get()
        return
    token = _SCOPE.set({})
    try:
        yield _SCOPE.get()
    finally:
        _SCOPE.reset(token)


def reads_inputs(fn):
    """Decorator: run ``fn`` inside an :func:`input_scope`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with input_scope():
            return fn(*args, **kwargs)
    return wrapper


def register_input(path) -> None:
    """Count ``path`` as an input of the current scope (no-op outside a scope or if it is gone)."""
    scope = _SCOPE.get()
    if scope is None:
        return
    try:
        st = os.stat(path)
    except OSError:
        return
    scope[(st.st_dev, st.st_ino)] = os.path.realpath(path)


def register_tree(folder, what: str = "input folder") -> None:
    """Count the whole folder ``folder`` as an input of the current scope: no output of the command
    may be written anywhere inside it (a dataset folder, a source folder of records...)."""
    scope = _SCOPE.get()
    if scope is None or folder is None:
        return
    real = os.path.realpath(os.fspath(folder))
    scope[("tree", real)] = (real, what)


def scope_inputs() -> list[str]:
    """The input files remembered so far in the current scope."""
    scope = _SCOPE.get()
    return [v for k, v in scope.items() if k[0] != "tree"] if scope else []


def scope_trees() -> list[tuple[str, str]]:
    """The input folders (real path, what) remembered so far in the current scope."""
    scope = _SCOPE.get()
    return [v for k, v in scope.items() if k[0] == "tree"] if scope else []


def _inside(path, folder: str) -> bool:
    real = os.path.realpath(os.fspath(path))
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def check_output_folder(folder, what: str = "output folder", inputs=()) -> str:
    """Refuse an output folder that is a file, that lies inside a folder the command reads (the
    scope's input folders and ``inputs``: pairs of (folder, what it is)), or that holds one of them
    (its files could land among the inputs: ``import-tfrecord out/sequences -o out``)."""
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise AcamError(f"{what} {folder!r} is a file; give a folder")
    trees = scope_trees() + [(os.path.realpath(os.fspath(p)), w) for p, w in inputs if p is not None]
    real = os.path.realpath(folder)
    for tree, tree_what in trees:
        if _inside(folder, tree):
            where = "is" if real == tree else "lies inside"
            raise AcamError(f"{what} {folder!r} {where} the {tree_what} {tree!r} that this command reads; "
                            "choose a folder outside it")
        if _inside(tree, real):
            raise AcamError(f"{what} {folder!r} holds the {tree_what} {tree!r} that this command reads; "
                            "choose a folder that does not contain it")
    return folder


RUN_FILES = ("best.pt", "last.pt", "log.csv")


def folder_kind(folder) -> str | None:
    """'dataset' (a manifest or a sequences folder), 'run' (a training run's checkpoints or log) or
    None for any other folder."""
    folder = os.fspath(folder)
    if os.path.lexists(os.path.join(folder, "manifest.json")) or os.path.isdir(os.path.join(folder, "sequences")):
        return "dataset"
    if any(os.path.lexists(os.path.join(folder, n)) for n in RUN_FILES):
        return "run"
    return None


# ------------------------------------------------------------------------------------------ inputs
def input_file(path, what: str = "input file", register: bool = True) -> str:
    """``path`` if it is a readable regular file (remembered as an input unless ``register`` is
    false: a file the command updates on purpose, like a dataset's manifest), else :class:`AcamError`."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AcamError(f"{what} {path!r} does not exist") from None
    except OSError as exc:
        raise AcamError(f"cannot read {what} {path!r}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise AcamError(f"{what} {path!r} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise AcamError(f"{what} {path!r} is not a regular file (a FIFO, device or socket); give a file")
    if not os.access(path, os.R_OK):
        raise AcamError(f"cannot read {what} {path!r}: permission denied")
    if register:
        register_input(path)
    return path


def read_bytes(path, what: str = "input file", limit: int | None = None, register: bool = True) -> bytes:
    """The whole of a small regular file (refused above ``limit`` bytes or the memory available)."""
    from .resources import check_allocation

    path = input_file(path, what, register)
    size = os.path.getsize(path)
    if limit is not None and size > limit:
        raise AcamError(f"{what} {path!r} holds {size} bytes, more than the {limit} such a file may")
    check_allocation(size, f"reading {what} {path!r}")
    with open(path, "rb") as f:
        return f.read()


MAX_JSON_DIGITS = 40       # an integer of more digits in a JSON input is refused (no file needs one)


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise ValueError(f"a number of {len(text.lstrip('-'))} digits")
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > 400:
        raise ValueError(f"a number written with {len(text)} characters")
    x = float(text)
    if x in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is beyond floating point")
    return x


def _json_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data, path, what: str = "valid JSON file"):
    """A JSON document (bytes or text) with finite numbers of sane length only; :class:`FormatError`
    names ``path`` in one line when it is not (junk, NaN, Infinity, 1e999, a 5000-digit integer,
    nesting too deep)."""
    import json

    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        return json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else _first_line(exc)
        raise FormatError(f"{path}: not a {what} ({reason})") from None


def _resolve_linked(name: str, holder: str) -> str | None:
    """Where HDF5 finds a file named inside ``holder``: absolute, beside ``holder``, or in the
    current folder (the library's own search order, without the environment prefixes)."""
    if os.path.isabs(name):
        return name if os.path.exists(name) else None
    for base in (os.path.dirname(os.path.abspath(holder)), os.getcwd()):
        cand = os.path.join(base, name)
        if os.path.exists(cand):
            return cand
    return None


_SOURCES: dict = {}   # (dev, ino, size, mtime) of a checked HDF5 file -> the files it reads


def h5_sources(f, path: str, _seen: frozenset = frozenset()) -> list[str]:
    """Every other file an open HDF5 file reads data from (external links, virtual-dataset sources,
    external raw storage), checked to exist; :class:`FormatError` names a dangling one."""
    import h5py

    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _SOURCES:
        return _SOURCES[key]
    names: list[str] = []
    try:
        f.visit_links(names.append)
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise FormatError(f"{path}: cannot list its objects ({_first_line(exc)})") from None
    out: list[str] = []
    seen = _seen | {os.path.realpath(path)}
    for name in names:
        try:
            link = f.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                if f.get(name) is None:
                    raise FormatError(f"{path}: '{name}' is a link to {link.path!r}, which does not exist")
                continue
            obj = None if isinstance(link, h5py.ExternalLink) else f.get(name)
        except (RuntimeError, KeyError, ValueError, OSError) as exc:
            raise FormatError(f"{path}: '{name}' cannot be followed ({_first_line(exc)}; a loop of links?)") from None
        if isinstance(link, h5py.ExternalLink):
            out += _external_target(link, name, path, seen)
        else:
            if isinstance(obj, h5py.Dataset):
                out += _dataset_sources(obj, name, path, seen)
    out = list(dict.fromkeys(out))
    _SOURCES[key] = out
    return out


def _external_target(link, name: str, path: str, seen: frozenset) -> list[str]:
    import h5py

    target = _resolve_linked(link.filename, path)
    if target is None:
        raise FormatError(f"{path}: '{name}' links to {link.filename!r}, which does not exist")
    target = input_file(target, f"file linked from {path!r}")
    if os.path.realpath(target) in seen:
        return [target]
    try:
        with h5py.File(target, "r") as g:
            if g.get(link.path) is None:
                raise FormatError(f"{path}: '{name}' links to {link.path!r} in {target!r}, which does not exist")
            return [target] + h5_sources(g, target, seen)
    except OSError as exc:
        raise FormatError(f"{path}: '{name}' links to {target!r}, which is not a readable HDF5 file "
                          f"({_first_line(exc)})") from None


def _dataset_sources(d, name: str, path: str, seen: frozenset) -> list[str]:
    import h5py

    out = []
    if d.is_virtual:
        _check_virtual_mapping(d, name, path)
        for vs in d.virtual_sources():
            if vs.file_name == ".":
                continue
            src = _resolve_linked(vs.file_name, path)
            if src is None:
                raise FormatError(f"{path}: virtual dataset '{name}' reads {vs.file_name!r}, which does not "
                                  "exist (HDF5 would fill it with zeros)")
            src = input_file(src, f"source of virtual dataset '{name}' in {path!r}")
            out.append(src)
            if os.path.realpath(src) in seen:
                continue
            try:
                with h5py.File(src, "r") as g:
                    sd = g.get(vs.dset_name)
                    if not isinstance(sd, h5py.Dataset):
                        raise FormatError(f"{path}: virtual dataset '{name}' reads {vs.dset_name!r} from "
                                          f"{src!r}, which has no such dataset")
                    _check_source_extent(vs, sd, name, path, src)
                    out += h5_sources(g, src, seen)
            except OSError as exc:
                raise FormatError(f"{path}: virtual dataset '{name}' reads {src!r}, which is not a readable "
                                  f"HDF5 file ({_first_line(exc)})") from None
    if d.external:
        out += _external_storage(d, name, path)
    return out


MAX_VIRTUAL_SOURCES = 4096
_UNLIMITED = (1 << 64) - 1


def _check_virtual_mapping(d, name: str, path: str) -> None:
    """Refuse a virtual dataset whose mappings do not cover every one of its values (HDF5 would
    fill the rest with zeros, and a billion unmapped rows take minutes to invent)."""
    import numpy as np

    try:
        maps = d.virtual_sources()
    except Exception as exc:                         # noqa: BLE001 - h5py raises many kinds here
        raise FormatError(f"{path}: virtual dataset '{name}': cannot read its mapping ({_first_line(exc)})") from None
    if len(maps) > MAX_VIRTUAL_SOURCES:
        raise FormatError(f"{path}: virtual dataset '{name}' has {len(maps)} mappings, more than "
                          f"{MAX_VIRTUAL_SOURCES}; refused")
    lows, highs, total = [], [], 0
    for vs in maps:
        try:
            lo, hi = vs.vspace.get_select_bounds()
            npts = vs.vspace.get_select_npoints()
        except Exception as exc:                     # noqa: BLE001
            raise FormatError(f"{path}: virtual dataset '{name}': a mapping cannot be checked "
                              f"({_first_line(exc)})") from None
        box = 1
        for a, b in zip(lo, hi):
            box *= b - a + 1
        if npts != box or any(b >= n for b, n in zip(hi, d.shape)):
            raise FormatError(f"{path}: virtual dataset '{name}' maps a selection that is not a block "
                              "inside its shape; refused")
        lows.append(lo)
        highs.append(hi)
        total += box
    if lows:
        lo_a, hi_a = np.array(lows, dtype=object), np.array(highs, dtype=object)
        for i in range(len(lows) - 1):
            if np.all((lo_a[i] <= hi_a[i + 1:]) & (lo_a[i + 1:] <= hi_a[i]), axis=1).any():
                raise FormatError(f"{path}: virtual dataset '{name}' maps overlapping blocks; refused")
    size = 1
    for n in d.shape:
        size *= n
    if total < size:
        raise FormatError(f"{path}: virtual dataset '{name}' of shape {d.shape} maps {total} of its {size} "
                          "values (HDF5 would fill the rest with zeros); refused")


def _check_source_extent(vs, sd, name: str, path: str, src: str) -> None:
    """The block a virtual dataset reads must lie inside its source dataset, whose storage must
    hold it (else HDF5 reads zeros)."""
    import h5py

    from .h5read import check_storage

    try:
        if vs.src_space.get_select_type() == h5py.h5s.SEL_ALL:     # the whole source, as large as it is
            short = sd.size < vs.vspace.get_select_npoints()
        else:
            _, hi = vs.src_space.get_select_bounds()
            short = len(hi) != len(sd.shape) or any(b >= n for b, n in zip(hi, sd.shape))
    except Exception as exc:                         # noqa: BLE001
        raise FormatError(f"{path}: virtual dataset '{name}': its source selection in {src!r} cannot be "
                          f"checked ({_first_line(exc)})") from None
    if short:
        raise FormatError(f"{path}: virtual dataset '{name}' reads beyond the end of {vs.dset_name!r} in "
                          f"{src!r} (shape {sd.shape}); refused")
    check_storage(sd, vs.dset_name, src)


def _external_storage(d, name: str, path: str) -> list[str]:
    """The files of a dataset stored externally, resolved as HDF5 does (relative to the current
    folder), each checked to hold the bytes the dataset reads from it (HDF5 reads zeros past the end
    of a short file)."""
    need = d.dtype.itemsize
    for n in d.shape:
        need *= n
    out = []
    for ext_name, offset, size in d.external:
        ext_name = ext_name.decode() if isinstance(ext_name, bytes) else ext_name
        src = ext_name if os.path.isabs(ext_name) else os.path.join(os.getcwd(), ext_name)
        if not os.path.lexists(src):
            raise FormatError(f"{path}: dataset '{name}' stores its data in {ext_name!r}, which does not exist"
                              + ("" if os.path.isabs(ext_name) else f" (looked for in {os.getcwd()!r}, as "
                                 "HDF5 does)"))
        src = input_file(src, f"external storage of '{name}' in {path!r}")
        take = need if size in (None, _UNLIMITED) else min(need, int(size))
        held = os.path.getsize(src) - int(offset)
        if take > 0 and held < take:
            raise FormatError(f"{path}: dataset '{name}' reads {take} bytes from {ext_name!r} at offset {offset}, "
                              f"which holds {max(held, 0)}; refused")
        need -= take
        out.append(src)
    if need > 0:
        raise FormatError(f"{path}: dataset '{name}' declares {need} bytes more than its external files hold")
    return out


def open_h5(path, what: str = "HDF5 file"):
    """An HDF5 file opened for reading after every check of :func:`input_file` and
    :func:`h5_sources`; :class:`FormatError` names the file when it is not HDF5 or is damaged."""
    import h5py

    path = input_file(path, what)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        reason = _first_line(exc)
        if "signature" in reason:
            raise FormatError(f"{what} {path!r} is not an HDF5 file") from None
        raise FormatError(f"{what} {path!r} cannot be opened as HDF5 ({reason})") from None
    try:
        for src in h5_sources(f, path):
            register_input(src)
    except BaseException:
        f.close()
        raise
    return f


# ----------------------------------------------------------------------------------------- outputs
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


NAME_MAX = 255                # bytes in one file name on the usual file systems
_PART_ROOM = 1 + 1 + 64 + 1 + 10 + 1 + 8 + 5 + 8     # dots, host, pid, random, ".part" and a suffix


def _part_stem(base: str) -> str:
    """``base`` as it appears in its part files' names: shortened, with a digest of the whole name,
    when the part file's name would be longer than a file name may be (ENAMETOOLONG)."""
    import hashlib

    room = NAME_MAX - _PART_ROOM
    if len(base.encode("utf-8", "surrogateescape")) <= room:
        return base
    tag = hashlib.sha256(base.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    short = base.encode("utf-8", "surrogateescape")[: room - 13].decode("utf-8", "ignore")
    return f"{short}~{tag}"


def part_path(path) -> str:
    """A fresh part-file name beside ``path`` carrying this host and process id."""
    folder, base = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(folder, f".{_part_stem(base)}.{_HOST}.{os.getpid()}.{os.urandom(4).hex()}.part")


def _pid_alive(pid: int, since: float | None = None) -> bool:
    """Whether process ``pid`` still runs: not gone, not a zombie (a dead process its parent has
    not reaped), and - when ``since`` (the part file's age, seconds since the epoch) is given - not
    a newer process that was given the same id."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # another user's process, or not allowed to ask: alive unless /proc says
        pass
    info = _proc_stat(pid)
    if info is None:
        return True          # no /proc: trust the signal
    state, started = info
    if state in ("Z", "X", "x"):
        return False
    return not (since is not None and started is not None and started > since + 2.0)


def _proc_stat(pid: int):
    """(state letter, start time in seconds since the epoch or None) from ``/proc/PID/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    if not fields:
        return None
    started = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat", encoding="ascii") as f:
            btime = next(int(ln.split()[1]) for ln in f if ln.startswith("btime "))
        started = btime + int(fields[19]) / ticks
    return fields[0], started


def remove_stale_parts(path) -> list[str]:
    """Remove the part files of ``path`` whose writer, a process on this host, is gone (or a zombie)."""
    folder, base = os.path.split(os.path.abspath(os.fspath(path)))
    pat = re.compile(r"\." + re.escape(_part_stem(base)) +
                     r"\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.part(?:\.[A-Za-z0-9]+)?")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for n in names:
        m = pat.fullmatch(n)
        if not m or m["host"] != _HOST or int(m["pid"]) == os.getpid():
            continue
        try:
            since = os.lstat(os.path.join(folder, n)).st_mtime
        except OSError:
            continue
        if not _pid_alive(int(m["pid"]), since):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, n))
                removed.append(n)
    return removed


def check_output(path, protect=()) -> str:
    """The absolute output path, after refusing a path that is a folder or a special file, or that is
    any input of the current scope or in ``protect`` (HDF5 link targets of those included)."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise AcamError(f"output folder {folder!r} does not exist")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None           # absent, or a dangling link that the rename replaces
    except OSError as exc:
        raise AcamError(f"cannot write {path!r}: {exc.strerror}") from None
    for tree, tree_what in scope_trees():
        if _inside(path, tree):
            raise AcamError(f"output {path!r} lies inside the {tree_what} {tree!r} that this command reads; "
                            "choose a path outside it")
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise AcamError(f"output {path!r} is a folder; give a file name")
        if not stat.S_ISREG(st.st_mode):
            raise AcamError(f"output {path!r} exists and is not a regular file (a FIFO, device or socket); "
                            "refusing to replace it")
        for inp in _protected(protect):
            try:
                same = os.path.samefile(inp, path)
            except OSError:
                same = os.path.realpath(inp) == os.path.realpath(path)
            if same:
                raise AcamError(f"output {path!r} is also an input ({inp!r}); choose another output path")
    return path


def _protected(protect) -> list[str]:
    out = scope_inputs()
    for p in protect:
        if p is None or not os.path.isfile(p):
            continue
        out.append(os.fspath(p))
        with contextlib.suppress(Exception):
            import h5py

            if h5py.is_hdf5(p):
                with h5py.File(p, "r") as f:
                    out += h5_sources(f, os.fspath(p))
    return out


@contextlib.contextmanager
def atomic_output(path, protect=()):
    """Yield a part-file path beside ``path``; move it to ``path`` only if the block succeeds
    (see the module docs for what is refused).  ``protect`` lists inputs beyond the scope's."""
    path = check_output(path, protect)
    remove_stale_parts(path)
    tmp = part_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise AcamError(f"cannot write to {os.path.dirname(path)!r}: {exc.strerror}") from None
    os.close(fd)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(os.path.dirname(path))
    except BaseException as exc:
        reason = write_failure(exc, tmp)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if reason:
            raise AcamError(f"cannot write {path}: {reason}") from None
        if isinstance(exc, AcamError) and tmp in str(exc):      # name the output, not its part file
            raise type(exc)(str(exc).replace(tmp, path)) from None
        raise


def _fsync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.EROFS):   # folders on some file systems
            raise
    finally:
        os.close(fd)


_WRITE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EFBIG: "file too large (a file-size limit?)",
                 errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
                 errno.EIO: "input/output error", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted"}
_WRITE_TEXTS = [("No space left", errno.ENOSPC), ("errno = 28", errno.ENOSPC), ("File too large", errno.EFBIG),
                ("errno = 27", errno.EFBIG), ("Disk quota", errno.EDQUOT), ("Read-only file system", errno.EROFS),
                ("Input/output error", errno.EIO)]


def write_failure(exc: BaseException, part: str | None = None) -> str | None:
    """A one-line reason when ``exc`` says a write failed (full disk, size limit...), else None.

    Libraries word these failures their own way (PyTorch: "iostream error", "unexpected pos"), so
    when ``part`` (the file being written) is given, a failure while its file system is full or
    while it has reached the file-size limit counts as that."""
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        return _WRITE_ERRNOS[exc.errno]
    if not isinstance(exc, (OSError, RuntimeError)):
        return None
    text = str(exc)
    for needle, code in _WRITE_TEXTS:
        if needle in text:
            return _WRITE_ERRNOS[code]
    low = text.lower()
    if "write failed" in low or "failed writing" in low or "can't write" in low:
        return _first_line(exc)
    return _write_limits(part) if part else None


def _write_limits(part: str) -> str | None:
    import resource

    with contextlib.suppress(OSError):
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY and os.path.getsize(part) >= soft - 65536:
            return _WRITE_ERRNOS[errno.EFBIG]
        vfs = os.statvfs(os.path.dirname(part) or ".")
        if vfs.f_bavail * vfs.f_frsize < 1 << 20:
            return _WRITE_ERRNOS[errno.ENOSPC]
    return None


@contextlib.contextmanager
def h5_output(path, **kw):
    """``h5py.File(path, "w")`` that closes cleanly when writing failed (a full disk, a size limit).

    HDF5 cannot close a file whose final flush fails: its objects are left half-closed and the
    process may crash when it exits.  So the file is flushed first, while nothing is closed; when
    that (or the block) fails, the file's descriptor is pointed at ``/dev/null`` (the part file is
    discarded anyway) before closing, so that close succeeds; the error is raised as it came."""
    import h5py

    f = h5py.File(path, "w", **kw)
    try:
        yield f
        f.flush()            # every write happens here, while no object is closed yet
    except BaseException:
        _abandon(f)
        raise
    f.close()
    end = h5_end(path)       # give back what :func:`reserve` claimed beyond the file's end
    if end is not None and os.path.getsize(path) > end:
        os.truncate(path, end)


_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def h5_end(path) -> int | None:
    """The end-of-file address an HDF5 file's superblock records (None if it cannot be read)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        base = 0
        while base + 64 <= size:
            fh.seek(base)
            head = fh.read(64)
            if head[:8] == _SIGNATURE:
                if head[8] in (0, 1):           # superblock v0/v1: three addresses after a fixed part
                    so, pos = head[13], 24 + (4 if head[8] == 1 else 0)
                elif head[8] in (2, 3):
                    so, pos = head[9], 12
                else:
                    return None
                addr = lambda i: int.from_bytes(head[pos + i * so: pos + (i + 1) * so], "little")  # noqa: E731
                return base + addr(2) if so in (4, 8) else None
            base = 512 if base == 0 else base * 2
    return None


def reserve(f, nbytes: int, path) -> None:
    """Claim ``nbytes`` of disk for the HDF5 file ``f`` (open for writing) before writing to it, so
    that a full disk or a file-size limit fails here, in one line naming ``path``, and not inside
    HDF5 (which cannot recover from a failed write).  HDF5 trims the file to its real end when it
    closes it.  File systems without ``fallocate`` are written to without a reservation."""
    fd = f.id.get_vfd_handle()
    code = _fallocate(fd, int(nbytes))
    if code:
        from .resources import human_bytes

        reason = _WRITE_ERRNOS.get(code, os.strerror(code))
        raise AcamError(f"cannot write {path}: {reason} (it needs about {human_bytes(nbytes)})")


def _fallocate(fd: int, nbytes: int) -> int:
    """``fallocate(fd, 0, 0, nbytes)``: 0 on success or when the file system cannot reserve space
    (nothing is emulated: no slow zero-filling), else the errno."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.fallocate64
    except (OSError, AttributeError):
        return 0
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if fn(fd, 0, 0, nbytes) == 0:
        return 0
    code = ctypes.get_errno()
    return 0 if code in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV) else code


def _abandon(f) -> None:
    with contextlib.suppress(Exception):
        fd = f.id.get_vfd_handle()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    with contextlib.suppress(Exception):
        f.close()


def write_text(path, text: str, protect=()) -> None:
    """Write a text file (UTF-8) through :func:`atomic_output`."""
    with atomic_output(path, protect) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
