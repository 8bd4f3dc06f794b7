"""Shared machinery of the benchmarks: one worker process per variant, interleaved rounds.

Every variant runs in its own Python process (so that its compile time, its memory high-water
mark and its compiled-code caches are its own), and the timed rounds are interleaved: round 1 of
every variant, then round 2 of every variant, and so on, so that a change in machine load hits all
variants alike. The orchestrator and the workers speak one JSON object per line; worker replies
start with ``@@`` so that stray output of libraries cannot be taken for one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
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


def options_from_variant(name: str, options_class: type, tokens: dict[str, dict[str, Any]],
                         fast: Callable[[], Any]) -> Any:
    """``name`` (``+``-joined tokens) -> an ``options_class`` instance. ``tokens`` maps each
    token to the fields it sets; ``fast`` starts from ``options_class.fast()``; ``eager`` sets
    nothing."""
    known = {"eager", "fast", *tokens}
    parts = name.split("+")
    unknown = set(parts) - known
    if unknown:
        raise SystemExit(f"unknown option(s) {', '.join(sorted(unknown))} in variant {name!r}; "
                         f"known: {', '.join(sorted(known))}")
    values: dict[str, Any] = dict(vars(fast())) if "fast" in parts else {}
    for part in parts:
        values.update(tokens.get(part, {}))
    return options_class(**values)


def add_common_arguments(parser: argparse.ArgumentParser, reference_s: float) -> None:
    """The arguments ``train_step.py`` and ``enhance.py`` share."""
    parser.add_argument("--conv-dim", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls (the first is compile)")
    parser.add_argument("--variants", default="eager,fast")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                        help="add this precision to every variant")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile-cache", default=None,
                        help="inductor cache folder (default: a fresh temporary one: cold compile)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="also measure the first call of a second process on the same cache")
    parser.add_argument("--reference-s", type=float, default=reference_s,
                        help="published figure to compare with (only meaningful at the default settings)")


@dataclass
class Measurements:
    variants: list[str]
    first: dict[str, float]                 # the first call (compilation included)
    warmup: dict[str, dict[str, Any]]       # each variant's warm-up reply
    times: dict[str, list[float]]           # wall seconds of the timed calls
    cpu: dict[str, list[float]]             # their CPU seconds
    memory: dict[str, dict[str, int]]       # peak_bytes, max_rss
    warm_first: dict[str, float]            # first call of a second process on the same cache


def measure_variants(script: str, args: argparse.Namespace, setup: dict[str, Any], per_round: int,
                     is_compiled: Callable[[str], bool], describe: Callable[[dict[str, Any]], str]
                     ) -> Measurements:
    """One worker process per variant of ``args.variants`` (``args.precision`` added to each):
    set up, warm up, then ``args.rounds`` interleaved rounds of ``per_round`` timed calls; with
    ``args.warm_cache`` the first call of a second process per compiled variant."""
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.precision and args.precision != "fp32":
        variants = [v if args.precision in v.split("+") else f"{v}+{args.precision}" for v in variants]
    for variant in variants:
        is_compiled(variant)  # rejects unknown tokens before anything starts
    cache = Path(args.compile_cache) if args.compile_cache else Path(tempfile.mkdtemp(prefix="uegan-bench-cache-"))
    env = {"TORCHINDUCTOR_CACHE_DIR": str(cache)}
    print(f"# load average before: {load_average()}; compile cache {cache}")
    setup = {**setup, "device": args.device, "threads": args.threads, "seed": args.seed}
    workers: dict[str, Worker] = {}
    first: dict[str, float] = {}
    warmup: dict[str, dict[str, Any]] = {}
    warm_first: dict[str, float] = {}
    try:
        for variant in variants:
            worker = Worker(script, [], env)
            info = worker.request(op="setup", variant=variant, **setup)
            started = time.perf_counter()
            reply = worker.request(op="warmup", count=args.warmup)
            first[variant], warmup[variant] = reply["first_s"], reply
            log(f"{variant}: set up ({info['threads']} threads), first call {reply['first_s']:.2f} s, "
                f"warm-up {time.perf_counter() - started:.1f} s, {describe(reply)}")
            workers[variant] = worker
        times, cpu, memory = run_rounds(workers, args.rounds, per_round, log)
    finally:
        for worker in workers.values():
            worker.close()
    if args.warm_cache:
        for variant in filter(is_compiled, variants):
            worker = Worker(script, [], env)
            try:
                worker.request(op="setup", variant=variant, check=False, **setup)
                warm_first[variant] = worker.request(op="warmup", count=1)["first_s"]
            finally:
                worker.close()
    if not args.compile_cache:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"# load average after: {load_average()}")
    return Measurements(variants, first, warmup, times, cpu, memory, warm_first)


def print_table(m: Measurements, unit: str, reference_s: float, reference: str,
                per_call: int = 1, extra: dict[str, Callable[[str], str]] | None = None) -> None:
    """The variants side by side, per ``unit`` (each call covers ``per_call`` units), then the
    last line ``median_s=<seconds per unit>`` of the last variant. ``extra``: more columns,
    heading -> the text for a variant."""
    extra = extra or {}
    times = {v: [t / per_call for t in m.times[v]] for v in m.variants}
    base = summary(times[m.variants[0]])["median"]
    width = max(len(v) for v in m.variants) + 2
    print(f"# {'variant':<{width}} {'median s/' + unit:>14} {'q1-q3':>15} {'best':>7} "
          f"{'cpu s/' + unit:>11} {'vs ' + m.variants[0]:>12} {'vs published':>12} "
          f"{'first call s':>12} {'warm-cache 1st':>14} {'peak memory':>12}"
          + "".join(f" {heading:>9}" for heading in extra))
    for variant in m.variants:
        stats = summary(times[variant])
        cpu = summary(m.cpu[variant])["median"] / per_call
        warm = f"{m.warm_first[variant]:.2f}" if variant in m.warm_first else "-"
        print(f"  {variant:<{width}} {stats['median']:>14.4f} {stats['q1']:>7.3f}-{stats['q3']:<7.3f} "
              f"{stats['min']:>7.3f} {cpu:>11.3f} {base / stats['median']:>11.2f}x "
              f"{reference_s / stats['median']:>11.2f}x {m.first[variant]:>12.2f} {warm:>14} "
              f"{fmt_mib(m.memory[variant]['peak_bytes']):>12}"
              + "".join(f" {column(variant):>9}" for column in extra.values()))
    print(f"# published reference: {reference_s} s/{unit} ({reference}); 'vs' columns are speed-ups "
          f"(higher is faster); n = {len(m.times[m.variants[0]])} calls each")
    print(f"median_s={summary(times[m.variants[-1]])['median']:.4f}")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


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


def timed_calls(fn: Callable[[], Any], synchronize: Callable[[], None], device: Any,
                count: int) -> dict[str, Any]:
    """The worker's ``run`` reply: ``count`` timed calls of ``fn`` with their CPU seconds and
    the peak memory during them (CUDA: allocated; else the resident set size)."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cpu_times: list[float] = []
    with MemorySampler() as memory:
        times = [timed(fn, synchronize, cpu_times) for _ in range(count)]
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else memory.peak
    return {"times": times, "cpu_times": cpu_times, "peak_bytes": peak, "max_rss": max_rss_bytes()}


def repeat_times(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (in-process
    micro-benchmarks; the variant comparisons use :func:`measure_variants`)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def import_torch(threads: int | None, title: str) -> Any:
    """``torch`` with ``threads`` threads (when given), after a header line naming the machine."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    print(f"# {title}: {torch.get_num_threads()} threads, {describe_machine('cpu')}; "
          f"load average {load_average()}")
    return torch


def fmt_mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f} MiB"
