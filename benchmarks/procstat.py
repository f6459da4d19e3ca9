"""CPU seconds and peak memory of processes, read from Linux ``/proc``."""

from __future__ import annotations

import os
from collections.abc import Iterable


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(command name, parent pid, utime+stime ticks) of ``pid``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw.rsplit(")", 1)[1].split()
    return name, int(fields[1]), int(fields[11]) + int(fields[12])


def _all() -> dict[int, tuple[str, int, int]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                out[int(entry)] = stat
    return out


def tree(roots: Iterable[int]) -> set[int]:
    """The given pids and all their descendants."""
    procs = _all()
    found = set(roots)
    frontier = list(found)
    while frontier:
        parent = frontier.pop()
        for pid, (_, ppid, _) in procs.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            total += stat[2]
    return total / tick


def named(*names: str) -> set[int]:
    """Pids whose command name is one of ``names`` (e.g. postgres, redis-server)."""
    return {pid for pid, (name, _, _) in _all().items() if name in names}


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of one process, in MiB; 0 when unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
