"""What every ``hashfed`` command shares: exit codes, the usage error, the node's home
from ``--home`` or ``HASHFED_HOME``, and the time as commands record it."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

from hashfed.federation.home import Home, open_home
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import check_collection
from hashfed.protocol.batch import format_created
from hashfed.protocol.hashtypes import parse_hash_type

EXIT_ERROR = 2
EXIT_NOT_FOUND = 1


class CliError(Exception):
    """A usage error: printed as one line, exit 2."""


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _stamp() -> str:
    return format_created(_now())


def _home(args: argparse.Namespace) -> Path:
    home = args.home or os.environ.get("HASHFED_HOME")
    if not home:
        raise CliError("no node home: pass --home DIR or set HASHFED_HOME")
    return Path(home)


def _load(args: argparse.Namespace) -> Home:
    return open_home(_home(args))


def _collection(args: argparse.Namespace, home: Home) -> str:
    return check_collection(args.collection or home.config.default_collection)


def _hash_type(text: str) -> str:
    """A hash type name as users write it (``MD5``, ``pdq``)."""
    try:
        return parse_hash_type(text)
    except ProtocolError as exc:
        raise CliError(str(exc)) from exc
