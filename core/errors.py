"""The one exception family of the project.

Library code raises :class:`AcamError` (or a subclass) for every problem a user can cause: a missing
file, a malformed dataset, an impossible option.  The message names the bad value.  The command line
turns it into one line on stderr and a non-zero exit status, without a traceback.
"""


class AcamError(Exception):
    """A problem with the user's input or settings, described in one line."""


class FormatError(AcamError):
    """A file exists but does not follow the documented layout (missing dataset, wrong shape...)."""


def one_line_warnings():
    """A context manager under which every Python warning shown is one line on stderr
    (``warning: MESSAGE``) instead of the file, line number and source line Python prints: what a
    user of the command line sees.  Which warnings are shown (the filters) is left as it is."""
    import contextlib
    import sys
    import warnings

    @contextlib.contextmanager
    def scope():
        old = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            text = " ".join(str(message).split()) or category.__name__
            try:
                (file or sys.stderr).write(f"warning: {text}\n")
            except (OSError, ValueError):       # stderr closed: nothing to tell
                pass

        warnings.showwarning = show
        try:
            yield
        finally:
            warnings.showwarning = old

    return scope()


class ParameterError(AcamError):
    """A setting outside its range, named as the library knows it (``retries=-1 must be at least 0``).

    ``param`` is the parameter's name, ``value`` the value given, ``rule`` what it must be; a front end
    may name its own spelling of the parameter instead (the command line: ``--retries -1 must be at
    least 0``)."""

    def __init__(self, param: str, value, rule: str):
        self.param, self.value, self.rule = param, value, rule
        super().__init__(f"{param}={value!r} {rule}")


class OutputExists(AcamError):
    """An output exists that a run would replace; ``overwrite`` replaces it."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path} {reason}; pass overwrite=True to replace it")
