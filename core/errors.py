"""The one exception family of the project.

Library code raises :class:`AcamError` (or a subclass) for every problem a user can cause: a missing
file, a malformed dataset, an impossible option.  The message names the bad value.  The command line
turns it into one line on stderr and a non-zero exit status, without a traceback.
"""


class AcamError(Exception):
    """A problem with the user's input or settings, described in one line."""


class FormatError(AcamError):
    """A file exists but does not follow the documented layout (missing dataset, wrong shape...)."""
