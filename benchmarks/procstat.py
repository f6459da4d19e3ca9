"""CPU seconds and memory of processes, read from Linux ``/proc`` (no extra dependency).

CPU of a group of processes is the sum over its live members of ``utime + stime`` (their
own CPU) plus ``cutime + cstime`` (the CPU of children they have waited for).  The second
term matters for PostgreSQL: a backend that exits during a run takes its CPU out of the
first sum, and the kernel adds it to the postmaster's ``cutime`` when the postmaster reaps
it, so a delta of this total over a run counts short-lived backends too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Stat:
    name: str  # the kernel's command name (``comm``), e.g. "postgres", "redis-server"
    ppid: int
    own_ticks: int  # utime + stime
    children_ticks: int  # cutime + cstime (waited-for children)


def stat(pid: int) -> Stat | None:
    """``/proc/<pid>/stat`` of one process; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: it ends at the last ")"
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw.rsplit(")", 1)[1].split()
    return Stat(
        name=name,
        ppid=int(fields[1]),
        own_ticks=int(fields[11]) + int(fields[12]),
        children_ticks=int(fields[13]) + int(fields[14]),
    )


def all_processes() -> dict[int, Stat]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = stat(int(entry))
            if found is not None:
                out[int(entry)] = found
    return out


def tree(roots: Iterable[int]) -> set[int]:
    """The given pids (those still alive) and all their descendants."""
    procs = all_processes()
    children: dict[int, list[int]] = {}
    for pid, st in procs.items():
        children.setdefault(st.ppid, []).append(pid)
    found = {pid for pid in roots if pid in procs}
    frontier = list(found)
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def named_roots(*names: str) -> set[int]:
    """Pids named one of ``names`` whose parent has another name: the postmaster of each
    PostgreSQL cluster (its backends are named "postgres" too), each redis-server."""
    procs = all_processes()
    return {
        pid
        for pid, st in procs.items()
        if st.name in names and (st.ppid not in procs or procs[st.ppid].name not in names)
    }


def cpu_seconds(pids: Iterable[int]) -> float:
    """Own plus reaped-children CPU seconds of the live processes among ``pids``."""
    total = 0
    for pid in pids:
        st = stat(pid)
        if st is not None:
            total += st.own_ticks + st.children_ticks
    return total / TICK


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of one process, in MiB; 0 when unknown."""
    return _status_kib(pid, "VmHWM:") / 1024


def rss_mb(pid: int) -> float:
    """VmRSS (current resident set) of one process, in MiB; 0 when unknown."""
    return _status_kib(pid, "VmRSS:") / 1024
