"""Time as the node records it. The clock is read here and above, never below: ``protocol/``
takes times as parameters, and every class that needs the time takes a ``Clock``.

``timestamp`` is the one form of every time hashfed records (pull status, evidence):
RFC 3339 UTC, whole seconds, ``Z``, the same form as a batch's ``created``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from hashfed.protocol.batch import format_created

# Unix seconds now; ``time.time`` in production, a fixed or stepping function in tests.
Clock = Callable[[], float]


def timestamp(now: float) -> str:
    """``now`` (Unix seconds) as RFC 3339 UTC, whole seconds, ``Z``."""
    return format_created(datetime.fromtimestamp(now, UTC))
