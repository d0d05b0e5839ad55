"""File formats hashfed reads and writes, pure: one module a format.

Readers take text (a ``str``, or an iterable of lines such as an open text file: the
caller opens and decodes) and yield ``hashfed.protocol.entries.Entry`` values, raising
:class:`FormatError` (a ``ProtocolError``) that names the line, or the object, and what is
wrong; each takes ``errors=[]`` to collect bad items and go on instead (``--skip-bad``),
and bounds what it reads (a line, a document, a count of objects). Writers take
``hashfed.protocol.records.Record`` values and return or stream text. Nothing here opens
files, sockets or databases, or reads the clock or a random source: the CLI and the HTTP
layer own the IO, and times and ids are parameters. Imports: ``hashfed.protocol`` (and
keys) only.

==========  ==========================  ============================================
module      reads                       writes
==========  ==========================  ============================================
``csv``     ``type,value[,labels]``,    ``type,value,labels,contributors``
            named columns, fixed type
``lines``   one value a line            one value a line
``jsonl``   ``{"type","value",          ``Record.to_json_obj()`` a line
            "labels"?}`` a line
``stix``    STIX 2.1 bundles: file-     a bundle of one Indicator per record
            hash Indicators, files
``misp``    a MISP event's hash         a MISP feed folder (events, manifest,
            attributes                  ``hashes.csv``)
==========  ==========================  ============================================

Each module's docstring says what it decided where the format leaves a choice.
"""

from ._common import MAX_DOCUMENT_CHARS, MAX_LINE_CHARS, FormatError
from .csv import read_csv, write_csv
from .jsonl import read_jsonl, write_jsonl
from .lines import read_lines, write_lines
from .misp import read_misp_event, write_feed
from .stix import read_stix, write_bundle

__all__ = [
    "FormatError",
    "MAX_LINE_CHARS",
    "MAX_DOCUMENT_CHARS",
    "read_csv",
    "write_csv",
    "read_lines",
    "write_lines",
    "read_jsonl",
    "write_jsonl",
    "read_stix",
    "write_bundle",
    "read_misp_event",
    "write_feed",
]
