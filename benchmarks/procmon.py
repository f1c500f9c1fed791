"""Process measurements read from /proc (Linux), so the benchmark needs no extra dependency.

``TreeMonitor`` polls a process and all its descendants (the Dagster CLI, its forkserver and the
step processes it forks) and keeps each one's peak resident set (``VmHWM``, which the kernel
keeps as a high-water mark, so a short poll interval only risks missing the last few
milliseconds of a process) and CPU time. It also samples the CPU time of unrelated processes
(the sandbox) so that their load during one step can be computed afterwards.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, or None once it has gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _status_kb(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return values
    for line in text.splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            name, value = line.split(":", 1)
            values[name] = int(value.split()[0])
    return values


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads' children)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        found.extend(int(part) for part in text.split())
    return found


@dataclass
class ProcessRecord:
    """What was seen of one process while it was polled."""

    pid: int
    parent: int
    cmdline: str
    first_seen: float
    last_seen: float
    peak_rss_kb: int = 0
    cpu_seconds: float = 0.0


@dataclass
class CpuSamples:
    """(wall time, CPU seconds) samples of one process."""

    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)

    def between(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds used and wall seconds covered by the samples inside [start, end]."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return 0.0, 0.0
        return inside[-1][1] - inside[0][1], inside[-1][0] - inside[0][0]


class TreeMonitor:
    """Polls a process tree in a background thread until stopped."""

    def __init__(self, root: int, extra: tuple[int, ...] = (), interval: float = 0.02) -> None:
        self.root = root
        self.interval = interval
        self.processes: dict[int, ProcessRecord] = {}
        self.extra = {pid: CpuSamples(pid) for pid in extra}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procmon", daemon=True)

    def __enter__(self) -> TreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)
        self.poll()

    def poll(self) -> None:
        """Record one sample of every process in the tree and of the extra processes."""
        now = time.time()
        pending = [(self.root, 0)]
        while pending:
            pid, parent = pending.pop()
            status = _status_kb(pid)
            cpu = cpu_seconds(pid)
            if not status or cpu is None:
                continue
            record = self.processes.get(pid)
            if record is None:
                record = self.processes[pid] = ProcessRecord(
                    pid, parent, _cmdline(pid), first_seen=now, last_seen=now
                )
            record.last_seen = now
            record.peak_rss_kb = max(record.peak_rss_kb, status.get("VmHWM", 0))
            record.cpu_seconds = max(record.cpu_seconds, cpu)
            pending.extend((child, pid) for child in children(pid))
        for samples in self.extra.values():
            cpu = cpu_seconds(samples.pid)
            if cpu is not None:
                samples.samples.append((now, cpu))
