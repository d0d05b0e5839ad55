"""Hash one file: the bytes' MD5 and SHA-256, and the PDQ of what they decode to. IO.

The file is opened once, non-blocking (so a FIFO passed by mistake cannot hang a worker),
checked to be a regular, non-empty file, then read in 1 MiB chunks into both digests
(bounded memory whatever the size); its first bytes decide the decoder
(:mod:`hashfed.media.sniff`), and the decoder reads the same open file from the start, so
the digests and the PDQ are of the same bytes even if the path is replaced meanwhile.

:func:`hash_file` never raises for a bad file: every failure is a
:class:`~hashfed.media.results.HashFailure` whose message is one of a fixed set of
sentences (tests pin them), so the caller can print it after the path and carry on.
An error we did not foresee is still tied to its path, as ``unexpected error (Type)``.
"""

from __future__ import annotations

import hashlib
import os
import stat

from ._image import image_pdq
from ._video import video_frames
from .errors import MediaError, os_error_message
from .options import HashOptions
from .results import HashFailure, HashResult, MediaHash
from .sniff import SNIFF_BYTES, Kind, Unrecognised, sniff

CHUNK_BYTES = 1 << 20


def hash_file(path: str, options: HashOptions) -> HashResult:
    """The hashes of the file at ``path``, or why there are none."""
    try:
        return _hash(path, options)
    except MediaError as exc:
        return HashFailure(path, str(exc), exc.detail)
    except OSError as exc:
        return HashFailure(path, os_error_message(exc), str(exc))
    except MemoryError:
        return HashFailure(path, "out of memory while decoding")
    except Exception as exc:  # a bug or a library surprise: still one line for one file
        return HashFailure(path, f"unexpected error ({type(exc).__name__})", str(exc))


def _hash(path: str, options: HashOptions) -> MediaHash:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0, closefd=True) as raw:
        info = os.fstat(raw.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise MediaError("not a regular file")
        md5 = hashlib.md5(usedforsecurity=False)
        sha256 = hashlib.sha256()
        head = b""
        total = 0
        buffer = bytearray(CHUNK_BYTES)
        view = memoryview(buffer)
        while count := raw.readinto(buffer):
            chunk = view[:count]
            if len(head) < SNIFF_BYTES:
                head += bytes(chunk[: SNIFF_BYTES - len(head)])
            md5.update(chunk)
            sha256.update(chunk)
            total += count
        if total == 0:
            raise MediaError("empty file (0 bytes)")
        sniffed = sniff(head)
        if isinstance(sniffed, Unrecognised):
            what = "" if sniffed is Unrecognised.UNKNOWN else f" ({sniffed.value})"
            raise MediaError(f"unsupported file type{what}: not an image or video this hashes")
        raw.seek(0)
        with open(os.dup(raw.fileno()), "rb", closefd=True) as file:  # buffered, for the decoders
            md5_hex, sha256_hex = md5.hexdigest(), sha256.hexdigest()
            if sniffed.kind is Kind.IMAGE:
                pdq, variants, notes = image_pdq(file, sniffed.format, options)
                return MediaHash(path=path, kind=sniffed.kind, format=sniffed.format, md5=md5_hex, sha256=sha256_hex,
                                 pdq=pdq, variants=variants, warnings=notes)
            frames, notes = video_frames(file, sniffed.format, options)
            return MediaHash(path=path, kind=sniffed.kind, format=sniffed.format, md5=md5_hex, sha256=sha256_hex,
                             frames=frames, warnings=notes)


__all__ = ["hash_file"]
