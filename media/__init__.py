"""Hashing media: the MD5, SHA-256 and PDQ hashes of images and videos (an optional extra,
``pip install 'hashfed[media]'``). Imports: ``hashfed.protocol`` only.

Pure parts (no IO): :mod:`.pdq` (PDQ of an RGB array, dihedral variants), :mod:`.pixels`
(every Pillow mode to RGB; alpha, 16-bit, float and EXIF decisions), :mod:`.sniff` (format
from magic bytes), :mod:`.results` (result values, JSON and CSV rows), :mod:`.options`.
IO: :mod:`.hashing` (one file), :mod:`.walk` (files, folders, ``-``, symlink loops),
:mod:`.pool` (every core, input order, progress).

A command is a few lines over :func:`hash_paths`::

    for result in hash_paths(args.paths, stdin_lines=sys.stdin, progress=bar):
        if result.ok:
            print(json.dumps(result.to_json_obj()))
            for warning in result.warnings:
                print(f"{result.path}: {warning}", file=sys.stderr)
        else:
            print(result, file=sys.stderr)  # "path: message"
            failed = True
    return 2 if failed else 0
"""

from .errors import MediaError
from .hashing import hash_file
from .options import HashOptions
from .pdq import Dihedral, Pdq, dihedral_of_rgb, hamming, pdq_of_rgb
from .pool import Progress, default_workers, hash_paths
from .results import FramePdq, HashFailure, HashResult, MediaHash, csv_rows
from .sniff import Kind
from .walk import iter_inputs

__all__ = [
    "Dihedral",
    "FramePdq",
    "HashFailure",
    "HashOptions",
    "HashResult",
    "Kind",
    "MediaError",
    "MediaHash",
    "Pdq",
    "Progress",
    "csv_rows",
    "default_workers",
    "dihedral_of_rgb",
    "hamming",
    "hash_file",
    "hash_paths",
    "iter_inputs",
    "pdq_of_rgb",
]
