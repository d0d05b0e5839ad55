"""Event lines (``federation.events``): one line each, named fields, nothing a hostile
peer can use to forge a line or drive a terminal."""

from __future__ import annotations

import io
import json
import logging

import pytest

from hashfed.federation.events import configure_logging, emit, printable

HOSTILE = 'peer said "no"\n level=error event=forged \x1b[2J<script>'


@pytest.fixture
def output() -> io.StringIO:
    return io.StringIO()


def capture(fmt: str, level: str = "info") -> tuple[io.StringIO, logging.Handler]:
    stream = io.StringIO()
    return stream, configure_logging(fmt=fmt, level=level, stream=stream)


def teardown_function() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def test_text_is_logfmt_with_hostile_values_quoted_and_escaped() -> None:
    stream, _ = capture("text")
    emit("pull", node="a.example", peer="b.example", outcome="failed", duration_s=0.25,
         entries=0, error=HOSTILE, skipped=None)
    (line,) = stream.getvalue().splitlines()
    assert " event=pull node=a.example peer=b.example outcome=failed duration_s=0.25 entries=0 " in line
    assert line.startswith("ts=") and " level=info " in line
    assert 'error="peer said \\"no\\"\\x0a level=error event=forged \\x1b[2J<script>"' in line
    assert "skipped" not in line and "\x1b" not in line


def test_json_is_one_object_a_line() -> None:
    stream, _ = capture("json")
    emit("refused", logging.INFO, node="a.example", status=401, reason="bad-signature",
         peer=None, error=HOSTILE)
    (line,) = stream.getvalue().splitlines()
    obj = json.loads(line)
    assert obj["event"] == "refused" and obj["status"] == 401 and obj["reason"] == "bad-signature"
    assert obj["error"] == printable(HOSTILE) and "\x1b" not in obj["error"]
    assert "peer" not in obj


def test_level_drops_events_below_it() -> None:
    stream, _ = capture("text", "warning")
    emit("publish", node="a.example", size=1)
    emit("evidence", logging.WARNING, node="a.example", log="b.example/default")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "event=evidence" in lines[0] and "level=warning" in lines[0]


def test_other_records_are_lines_too() -> None:
    stream, _ = capture("text")
    logging.getLogger("hashfed.something").warning("disk %s", "full\nx")
    (line,) = stream.getvalue().splitlines()
    assert 'event=log logger=hashfed.something msg="disk full\\x0ax"' in line


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        configure_logging(fmt="xml", level="info")
