"""Machine exclusivity, measured: how much CPU other processes used during each call.

The reference checklist asks that no other heavy job shares the machine. A
load average taken once at the start cannot show that (a job started a minute
later passes), so the runner samples around every call:

- ``/proc/stat``: busy jiffies of the whole machine (every CPU);
- ``/proc/<pid>/stat``: CPU time of the runner itself and, when the engine
  listens on this machine, of the engine process and its descendants (Ollama
  runs inference in a child process).

Busy time minus the runner's and the engine's, over the call's wall time, is
the number of cores other processes kept busy. The engine process is found by
its listening port (``/proc/net/tcp*`` gives the socket inode, a scan of
``/proc/*/fd`` the process holding it); ``engine_pid`` in cells.yaml names it
when the engine runs as another user whose descriptors cannot be read.

Where ``/proc`` is missing (macOS, Windows) nothing is recorded: the fields are
absent, never zero, so a reader cannot mistake "not measured" for "quiet".
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: Kernel clock ticks per second: /proc times are in these units.
try:
    TICKS = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):
    TICKS = 100


def _ticks_busy(proc: Path) -> int | None:
    """Busy ticks of all CPUs since boot (idle and iowait excluded)."""
    try:
        first = (proc / "stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    v = [int(x) for x in first[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time
    # is already counted in user and nice, so it is not added twice.
    return sum(v[i] for i in (0, 1, 2, 5, 6, 7) if i < len(v))


def _proc_ticks(proc: Path, pid: int) -> tuple[int, int] | None:
    """(utime + stime of every thread, parent pid) of one process, or None when gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    rest = text[text.rfind(")") + 2 :].split()
    try:
        return int(rest[11]) + int(rest[12]), int(rest[1])
    except (IndexError, ValueError):
        return None


def _children(proc: Path, pid: int) -> set[int]:
    """Every descendant of ``pid`` (via /proc/<pid>/task/*/children)."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = list((proc / str(current) / "task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for kid in map(int, kids):
                if kid not in out and kid != pid:
                    out.add(kid)
                    todo.append(kid)
    return out


def _is_local(host: str) -> bool:
    """True when ``host`` names this machine (loopback or an address bound here)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    for family, _type, _proto, _name, addr in infos:
        if not isinstance(addr[0], str):
            continue  # (int, bytes): an IPv6 address of a Python built without IPv6
        ip = ipaddress.ip_address(addr[0].split("%")[0])
        if ip.is_loopback:
            return True
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((addr[0], 0))  # binding succeeds only for this machine's addresses
            return True
        except OSError:
            continue
    return False


def _listening_inodes(proc: Path, port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (any address), from /proc/net/tcp{,6}."""
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != "0A":  # 0A: LISTEN
                continue
            if int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes


def _pid_holding(proc: Path, inodes: set[str]) -> int | None:
    """The lowest pid holding one of the socket inodes (readable fds only)."""
    wanted = {f"socket:[{i}]" for i in inodes}
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if str(fd.readlink()) in wanted:
                    found.append(int(entry.name))
                    break
            except OSError:
                continue
    return min(found) if found else None


def find_engine_pid(endpoint: str, proc: Path = Path("/proc")) -> tuple[str, int | None]:
    """(where, pid) of the process serving ``endpoint``.

    ``where`` is ``remote`` (another machine: its CPU is not ours to measure),
    ``local`` (pid found) or ``unresolved`` (listening here but the process
    could not be identified: its CPU then counts as other processes').
    """
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not _is_local(host):
        return "remote", None
    inodes = _listening_inodes(proc, port)
    pid = _pid_holding(proc, inodes) if inodes else None
    return ("local", pid) if pid else ("unresolved", None)


@dataclass
class Mark:
    """One sample: wall clock, machine busy ticks, and per-process ticks."""

    wall: float
    busy: int
    procs: dict[int, int] = field(default_factory=dict)
    load: float | None = None


class Sampler:
    """Samples around calls; ``available`` is False where /proc is missing."""

    def __init__(self, proc: Path = Path("/proc"), own_pid: int | None = None):
        self.proc = proc
        self.own_pid = own_pid if own_pid is not None else os.getpid()
        self.available = _ticks_busy(proc) is not None
        self.cores = os.cpu_count() or 1
        self.engines: dict[str, tuple[str, int | None]] = {}
        self._servers: dict[str, tuple[str, int | None]] = {}

    def locate(self, cell_id: str, endpoint: str, engine_pid: int | None = None) -> None:
        """Remember where a cell's engine runs (an explicit pid wins)."""
        if not self.available:
            return
        if engine_pid is not None:
            self.engines[cell_id] = ("local", engine_pid)
            return
        # Cells served by one server (several Ollama models) share one /proc scan.
        server = urlsplit(endpoint).netloc
        known = self._servers.get(server)
        if known is None:
            known = self._servers[server] = find_engine_pid(endpoint, self.proc)
        self.engines[cell_id] = known

    def _pids(self, cell_id: str) -> tuple[set[int], set[int]]:
        """(runner pids, engine pids): the engine's tree unless it is this process."""
        own = {self.own_pid}
        where, pid = self.engines.get(cell_id, ("remote", None))
        if where != "local" or pid is None:
            return own, set()
        if pid == self.own_pid:
            return own, set()  # an in-process engine: its time is already the runner's
        return own, {pid} | _children(self.proc, pid)

    def start(self, cell_id: str) -> Mark | None:
        """The sample taken just before a call."""
        if not self.available:
            return None
        busy = _ticks_busy(self.proc)
        if busy is None:
            return None
        own, engine = self._pids(cell_id)
        procs = {}
        for pid in own | engine:
            got = _proc_ticks(self.proc, pid)
            if got is not None:
                procs[pid] = got[0]
        return Mark(time.monotonic(), busy, procs)

    def finish(self, cell_id: str, mark: Mark | None) -> dict[str, Any] | None:
        """The call's ``machine_*`` fields: what the machine, runner and engine used."""
        if mark is None:
            return None
        busy = _ticks_busy(self.proc)
        if busy is None:
            return None
        wall = time.monotonic() - mark.wall
        own, engine = self._pids(cell_id)
        used: dict[str, int] = {"runner": 0, "engine": 0}
        for group, pids in (("runner", own), ("engine", engine - own)):
            for pid in pids:
                got = _proc_ticks(self.proc, pid)
                if got is None:
                    continue
                # A process born during the call (Ollama's runner after an unload)
                # has all its time inside the call.
                used[group] += got[0] - mark.procs.get(pid, 0)
        other = max(0, busy - mark.busy - used["runner"] - used["engine"])
        where, _pid = self.engines.get(cell_id, ("remote", None))
        record: dict[str, Any] = {
            "machine_cores": self.cores,
            "machine_wall_s": round(wall, 4),
            "machine_busy_cpu_s": round((busy - mark.busy) / TICKS, 3),
            "machine_runner_cpu_s": round(used["runner"] / TICKS, 3),
            "machine_engine_cpu_s": round(used["engine"] / TICKS, 3) if where == "local" else None,
            "machine_other_cpu_s": round(other / TICKS, 3),
            "machine_engine": where,
        }
        load = load_1m()
        if load is not None:
            record["machine_load_1m"] = load
        return record


def load_1m() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarise(calls: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The end record's ``machine`` summary over the calls that carry a sample.

    ``other_cores_*`` are cores kept busy by other processes: per call (other
    CPU seconds over the call's wall time), then the median and p90 over
    calls, and the run-wide ratio of sums (robust for calls shorter than the
    10 ms tick).
    """
    samples = [c for c in calls if c.get("machine_wall_s") and "machine_other_cpu_s" in c]
    if not samples:
        return None
    per_call = [s["machine_other_cpu_s"] / s["machine_wall_s"] for s in samples]
    loads = [s["machine_load_1m"] for s in samples if s.get("machine_load_1m") is not None]
    wall = sum(s["machine_wall_s"] for s in samples)
    engines = sorted({s.get("machine_engine") or "remote" for s in samples})
    out: dict[str, Any] = {
        "cores": samples[0]["machine_cores"],
        "calls_sampled": len(samples),
        "other_cores_p50": round(_quantile(per_call, 0.5), 3),
        "other_cores_p90": round(_quantile(per_call, 0.9), 3),
        "other_cores_mean": round(sum(s["machine_other_cpu_s"] for s in samples) / wall, 3),
        "engine": engines[0] if len(engines) == 1 else "mixed",
    }
    if loads:
        out["load_1m_p50"] = round(_quantile(loads, 0.5), 2)
        out["load_1m_max"] = max(loads)
    return out
