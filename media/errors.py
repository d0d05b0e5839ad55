"""The media extra's one error: a file that cannot be hashed, and why, in one line.

``MediaError`` sits under ``HashfedError`` beside the protocol's branches: the blame is
the input file (corrupt, empty, too large, of a type we do not hash, unreadable), not the
wire, a peer or the configuration. It never escapes a batch: :mod:`hashfed.media.hashing`
turns it into a :class:`~hashfed.media.results.HashFailure` value tied to the file's path,
so one bad file among thousands costs only its own line.

``str(error)`` is the message *without* the path (the failure value adds it) and without
any library's wording, so it is the same across Pillow and FFmpeg versions; what the
library said, where anything, is kept in ``detail`` for a verbose log.
"""

from __future__ import annotations

import errno

from hashfed.keys.errors import HashfedError


class MediaError(HashfedError):
    """A file that cannot be hashed. ``detail`` is the underlying library's own words."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def os_error_message(exc: OSError) -> str:
    """The one-line message for an OSError on opening or reading a path."""
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        return "no such file or folder"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "unreadable: permission denied"
    return f"unreadable: {exc.strerror or type(exc).__name__}"


__all__ = ["MediaError", "os_error_message"]
