"""Run the ``hashfed`` command line and report the process's own peak RSS.

``python -m bench.peak ARGS...`` runs ``hashfed ARGS...`` in this process, then writes
``peak_rss_bytes=N`` (VmHWM of /proc/self/status) to stderr. A parent's ``wait4`` rusage
would not do: on Linux a child's ``ru_maxrss`` also counts the parent's memory at fork,
and the benchmark's parent holds the sample rows.
"""

from __future__ import annotations

import sys

from hashfed.federation.cli import main


def peak_rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    code = main(sys.argv[1:])
    print(f"peak_rss_bytes={peak_rss_bytes()}", file=sys.stderr)
    sys.exit(code)
