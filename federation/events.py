"""What the node tells its operator: one line per event, with named fields.

An event is a ``logging`` record on the ``hashfed.events`` logger whose message is the
event's name and whose ``fields`` (an attribute of the record) are its data::

    emit("pull", node="a.example", peer="b.example", outcome="ok", duration_s=0.31)

Events are pull rounds, pushes, refused requests, publishes and evidence. They go through
``logging`` so that a program embedding hashfed keeps its own handlers, and so that the
metrics of a running node (``http.metrics``) can observe the same stream it logs: a handler
on this logger, keeping only the records of its node (``node`` names the org that saw the
event; several nodes may run in one process, as in the demo and the tests).

Two formatters write them, one line each, for ``serve --log-format``:

- ``TextFormatter``: logfmt-like, ``ts=… level=info event=pull node=a.example …``; a value
  with a space, a quote or an ``=`` is quoted, with ``\\`` and ``"`` escaped;
- ``JsonFormatter``: one JSON object a line (``ts``, ``level``, ``event``, fields).

Every value is made printable before it is written: a peer's error text reaches the log,
and a peer may be hostile, so control characters (a terminal escape, a forged newline that
would start a fake log line) are replaced by ``\\xNN``. Ordinary (non-event) log records
are written by the same formatters, with ``event=log`` and their logger and message.

Secrets never reach an event: callers pass reasons (a problem type), never a header, a
signature or a token.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

LOGGER_NAME = "hashfed.events"

logger = logging.getLogger(LOGGER_NAME)
# Events are INFO; the logger passes them on whatever the root's level is, and the output
# handler's own level (``serve --log-level``) decides what is written.
logger.setLevel(logging.INFO)

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every C0/C1 control character (ESC, CR, LF, ...) as ``\\xNN``."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def emit(name: str, /, level: int = logging.INFO, **fields: object) -> None:
    """Log the event ``name`` with its fields (None-valued fields are left out)."""
    logger.log(level, name, extra={"fields": {k: v for k, v in fields.items() if v is not None}})


def fields_of(record: logging.LogRecord) -> dict[str, object]:
    """An event record's fields ({} for any other record)."""
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


def _event_items(record: logging.LogRecord) -> list[tuple[str, object]]:
    ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    items: list[tuple[str, object]] = [("ts", ts), ("level", record.levelname.lower())]
    if record.name == LOGGER_NAME and isinstance(getattr(record, "fields", None), dict):
        items.append(("event", record.getMessage()))
        items += list(fields_of(record).items())
    else:
        items += [("event", "log"), ("logger", record.name), ("msg", record.getMessage())]
    if record.exc_info:
        items.append(("error", logging.Formatter().formatException(record.exc_info)))
    return items


_BARE = re.compile(r"[A-Za-z0-9_.:/@+\-]+")


def _logfmt_value(value: object) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    if _BARE.fullmatch(text):
        return text
    # Backslashes and quotes first, then control characters as \xNN: a literal "\x0a"
    # in the text comes out as "\\x0a", a line break as "\x0a".
    return '"' + printable(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


class TextFormatter(logging.Formatter):
    """``key=value`` pairs, one event a line (logfmt-like)."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in _event_items(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        obj = {}
        for key, value in _event_items(record):
            if isinstance(value, str):
                value = printable(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif not isinstance(value, (int, float, bool, list, type(None))):
                value = printable(str(value))
            obj[key] = value
        # ensure_ascii: any character past ASCII is \u-escaped, so a line is plain text
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":"))


FORMATS = {"text": TextFormatter, "json": JsonFormatter}
LEVELS = ("debug", "info", "warning", "error")


def configure_logging(*, fmt: str, level: str, stream: object = None) -> logging.Handler:
    """Send every log record of the process to ``stream`` (stderr) in ``fmt``; what is
    below ``level`` is dropped. Returns the handler (a caller may remove it)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}")
    handler = logging.StreamHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(FORMATS[fmt]())
    handler.setLevel(level.upper())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
