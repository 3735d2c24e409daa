"""Process memory: resident set now, its peak (resettable on Linux, so each trial measures its own)."""

from __future__ import annotations

import os
import re
import resource
from pathlib import Path


def rss_mb() -> float | None:
    """This process's resident memory now (Linux: /proc/self/statm; None elsewhere), in MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def peak_rss_mb() -> float:
    """Peak resident memory since the process started or since reset_peak_rss (Linux: VmHWM), in MB."""
    try:
        found = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    except OSError:
        found = None
    kb = int(found.group(1)) if found else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024, 1)


def reset_peak_rss() -> None:
    """Restart the peak counter (Linux: VmHWM via /proc/self/clear_refs); elsewhere the lifetime peak stays."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
