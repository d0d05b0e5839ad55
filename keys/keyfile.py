"""Private key files: one Go note signer key per file, readable by its owner only.

The file holds one line, the signer key of Go's ``golang.org/x/mod/sumdb/note``::

    PRIVATE+KEY+<name>+<hash8>+<base64(0x01 || seed32)>

A file is created with mode 0600 from its first byte (never created wider and narrowed
later), is never overwritten, and is refused when group or others have any access to it.
This is the only module of ``keys`` that touches the file system.
"""

from __future__ import annotations

import contextlib
import os
import stat

from hashfed.keys.ed25519 import Signer
from hashfed.keys.errors import KeyFileError, ProtocolError
from hashfed.keys.vkey import format_signer_key, parse_signer_key

MAX_KEY_FILE_BYTES = 1024
"""A signer key line is about 100 bytes; anything much longer is not a key file."""

__all__ = ["MAX_KEY_FILE_BYTES", "load_signer", "write_signer"]


def write_signer(path: os.PathLike[str] | str, signer: Signer) -> None:
    """Write ``signer`` to a new file at ``path`` with mode 0600.

    Raises KeyFileError when the file already exists or cannot be written; a partly
    written file is removed.
    """
    data = (format_signer_key(signer.name, signer._seed(), signer.public_key) + "\n").encode("ascii")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"key file {os.fsdecode(path)} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {os.fsdecode(path)}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # the umask may only narrow the mode; make it exact
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise KeyFileError(f"cannot write key file {os.fsdecode(path)}: {exc.strerror}") from exc
    os.close(fd)


def load_signer(path: os.PathLike[str] | str) -> Signer:
    """Read the Signer in the key file at ``path``.

    Raises KeyFileError when the file is missing, unreadable, not a regular file,
    accessible by group or others, malformed, or its key hash does not match its key.
    """
    shown = os.fsdecode(path)
    data = _read_private_file(path, shown)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {shown} is not a signer key (it is not ASCII text)") from None
    if text.endswith("\n"):
        text = text[:-1]
    try:
        name, claimed_hash, seed = parse_signer_key(text)
    except ProtocolError as exc:
        raise KeyFileError(f"key file {shown} is malformed: {exc}") from None
    signer = Signer.from_seed(name, seed)
    if signer.key_hash != claimed_hash:
        raise KeyFileError(f"key file {shown} is corrupt: its key hash does not match its key")
    return signer


def _read_private_file(path: os.PathLike[str] | str, shown: str) -> bytes:
    """The bytes of a regular file that only its owner may access (checked on the open file)."""
    try:
        # O_NONBLOCK: opening a FIFO planted at the path must not hang the node.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise KeyFileError(f"key file {shown} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {shown}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"key file {shown} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"key file {shown} is readable by group or others (mode {mode:04o}); run chmod 600 {shown}"
            )
        data = b""
        while len(data) <= MAX_KEY_FILE_BYTES:
            chunk = os.read(fd, MAX_KEY_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {shown}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"key file {shown} is too large to be a signer key")
    return data
