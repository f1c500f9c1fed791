"""Process measurements through psutil, for the benchmark harness.

``TreeMonitor`` polls a process and all its descendants (the Dagster CLI, its forkserver and the
step processes it forks) and keeps each one's peak resident set and CPU time. It also samples the
CPU time of unrelated processes (the sandbox) so that their load during one step can be computed
afterwards.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, or None once it has gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def _kernel_peak_rss_kb(pid: int) -> int:
    """The kernel's high-water mark of the resident set (Linux ``VmHWM``); 0 where there is none.

    psutil reports only the current resident set, which a poll sees at its own moments: a step
    that allocates and frees between two polls would look smaller than it was, and the report's
    "peak RSS < 500 MB" target would pass unearned. The kernel keeps the true peak, so a short
    poll interval only risks missing the last few milliseconds of a process.
    """
    try:
        with Path(f"/proc/{pid}/status").open() as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


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

    def __init__(
        self,
        root: int,
        extra: tuple[int, ...] = (),
        interval: float = 0.02,
        rescan_interval: float = 0.1,
    ) -> None:
        """Prepare, without starting, a monitor of ``root``'s tree.

        Args:
            root: Process whose descendants are measured with it.
            extra: Unrelated processes whose CPU time is sampled alongside.
            interval: Seconds between samples of the processes already found.
            rescan_interval: Seconds between searches for new descendants; psutil finds children
                by reading every process on the machine, too dear to do every ``interval``.
        """
        self.root = root
        self.interval = interval
        self.rescan_interval = rescan_interval
        self.processes: dict[int, ProcessRecord] = {}
        self.extra = {pid: CpuSamples(pid) for pid in extra}
        self._tree: dict[int, psutil.Process] = {}
        self._next_scan = 0.0
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
        if time.monotonic() >= self._next_scan:
            self._find_descendants()
            self._next_scan = time.monotonic() + self.rescan_interval
        for pid, process in list(self._tree.items()):
            if not self._sample(process, now):
                del self._tree[pid]
        for samples in self.extra.values():
            cpu = cpu_seconds(samples.pid)
            if cpu is not None:
                samples.samples.append((now, cpu))

    def _find_descendants(self) -> None:
        try:
            root = self._tree.get(self.root) or psutil.Process(self.root)
            found = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for process in found:
            self._tree.setdefault(process.pid, process)

    def _sample(self, process: psutil.Process, now: float) -> bool:
        """Update ``process``'s record; False once it has ended (exited or a zombie)."""
        record = self.processes.get(process.pid)
        try:
            with process.oneshot():
                if process.status() == psutil.STATUS_ZOMBIE:
                    return False
                times = process.cpu_times()
                rss_kb = process.memory_info().rss // 1024
                if record is None:
                    record = ProcessRecord(
                        process.pid,
                        process.ppid(),
                        " ".join(process.cmdline()),
                        first_seen=now,
                        last_seen=now,
                    )
        except psutil.Error:
            return False
        self.processes[process.pid] = record
        record.last_seen = now
        peak_kb = max(rss_kb, _kernel_peak_rss_kb(process.pid))
        record.peak_rss_kb = max(record.peak_rss_kb, peak_kb)
        record.cpu_seconds = max(record.cpu_seconds, times.user + times.system)
        return True
