"""Shared machinery of the benchmarks: one worker process per variant, interleaved rounds.

Every variant runs in its own Python process (so that its compile time, its memory high-water
mark and its compiled-code caches are its own), and the timed rounds are interleaved: round 1 of
every variant, then round 2 of every variant, and so on, so that a change in machine load hits all
variants alike. The orchestrator and the workers speak one JSON object per line; worker replies
start with ``@@`` so that stray output of libraries cannot be taken for one.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

REPLY = "@@"


# ---------------------------------------------------------------------------------------------
# orchestrator side


class Worker:
    """A worker process running ``script --worker ARGS``."""

    def __init__(self, script: str, args: list[str], env: dict[str, str] | None = None):
        self.proc = subprocess.Popen([sys.executable, script, "--worker", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})}, bufsize=1)

    def request(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(REPLY):
                reply = json.loads(line[len(REPLY):])
                if "error" in reply:
                    raise RuntimeError(f"worker failed: {reply['error']}")
                return reply
        raise RuntimeError(f"worker exited with status {self.proc.wait()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request(op="quit")
            except (RuntimeError, BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {"median": statistics.median(ordered), "q1": quartiles[0], "q3": quartiles[2],
            "min": ordered[0], "max": ordered[-1], "n": len(ordered)}


def load_average() -> str:
    try:
        return "/".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine(device: str) -> str:
    import torch

    text = (f"torch {torch.__version__}, python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs ({cpu_name()})")
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def run_rounds(workers: dict[str, Worker], rounds: int, per_round: int,
               log: Callable[[str], None]
               ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, dict[str, int]]]:
    """``rounds`` interleaved rounds of ``per_round`` timed calls per worker.

    Returns the wall times and the CPU times per worker and, per worker, the highest
    ``peak_bytes`` of its rounds and its last ``max_rss``.
    """
    times: dict[str, list[float]] = {name: [] for name in workers}
    cpu: dict[str, list[float]] = {name: [] for name in workers}
    memory: dict[str, dict[str, int]] = {name: {"peak_bytes": 0, "max_rss": 0} for name in workers}
    for index in range(rounds):
        for name, worker in workers.items():
            reply = worker.request(op="run", count=per_round)
            times[name].extend(reply["times"])
            cpu[name].extend(reply.get("cpu_times", []))
            memory[name]["peak_bytes"] = max(memory[name]["peak_bytes"], reply["peak_bytes"])
            memory[name]["max_rss"] = reply["max_rss"]
        log(f"round {index + 1}/{rounds} done (load {load_average()})")
    return times, cpu, memory


# ---------------------------------------------------------------------------------------------
# worker side


class MemorySampler:
    """Resident set size high-water mark during a block, sampled from /proc/self/statm.

    (``ru_maxrss`` covers the life of the process, set-up and compilation included; this covers
    the timed calls only.) On CUDA, use ``torch.cuda.max_memory_allocated`` instead.
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    @staticmethod
    def available() -> bool:
        return Path("/proc/self/statm").exists()

    def rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self._page

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> "MemorySampler":
        if self.available():
            self.peak = self.rss()
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.rss())


def max_rss_bytes() -> int:
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def serve(handlers: dict[str, Callable[..., dict[str, Any]]]) -> None:
    """The worker loop: one JSON command per stdin line, one ``@@`` reply per command."""
    out = sys.stdout
    sys.stdout = sys.stderr  # anything else printed goes to stderr
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            out.write(REPLY + json.dumps({}) + "\n")
            out.flush()
            return
        try:
            reply = handlers[op](**command)
        except Exception as error:  # reported to the orchestrator, which stops
            import traceback

            traceback.print_exc()
            reply = {"error": f"{type(error).__name__}: {error}"}
        out.write(REPLY + json.dumps(reply) + "\n")
        out.flush()


def timed(fn: Callable[[], Any], synchronize: Callable[[], None],
          cpu_times: list[float] | None = None) -> float:
    """Wall seconds of ``fn()`` (device work included); its process CPU seconds are appended
    to ``cpu_times`` when given (a load-robust proxy with one thread)."""
    synchronize()
    cpu = time.process_time()
    start = time.perf_counter()
    fn()
    synchronize()
    wall = time.perf_counter() - start
    if cpu_times is not None:
        cpu_times.append(time.process_time() - cpu)
    return wall


def fmt_mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f} MiB"
