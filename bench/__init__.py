"""Benchmarks (``make bench`` = ``python -m bench [NAMES...]``); never part of the test suite.

Registry: every module of this package that defines ``BENCHMARKS: list[Benchmark]`` is found by
``discover()``, so adding ``bench/fetch.py`` (or e2e, simulate) needs no change elsewhere. A
benchmark's ``run()`` returns measurements: dicts with at least the keys of ``Measurement``
(one JSON line each) plus any extra keys.

Memory: ``isolated(fn, ...)`` runs ``fn`` in a freshly spawned process and adds ``peak_mb``, that
process's peak resident set size (``VmHWM``: interpreter, libraries, the input it loads and
the work; not ``ru_maxrss``, which a spawned process inherits from the process that started it,
so that every measurement after one that built 5M votes in the parent read 414 MB), and
``work_mb``, the part of it above the resident size measured just before the work
(``fn`` calls ``mark_start()`` when its setup is done).
"""

from __future__ import annotations

import importlib
import multiprocessing
import pkgutil
import resource
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypedDict


class Measurement(TypedDict):
    """The keys every JSON line carries; measurements are plain dicts and may add keys."""

    bench: str
    seconds: float
    baseline: str | None
    baseline_seconds: float | None
    speedup: float | None
    peak_mb: float


@dataclass(frozen=True)
class Benchmark:
    name: str
    """``<what>/<size>``, e.g. ``rank/100x1M``."""
    description: str
    run: Callable[[], list[dict[str, Any]]]
    default: bool = True
    """Part of a plain ``make bench`` (kept within about 5 minutes); the others run when named
    or with ``all``."""


def discover() -> list[Benchmark]:
    """All registered benchmarks, in module order then registration order."""
    found: list[Benchmark] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "BENCHMARKS", []))
    return found


_start_rss_mb: float | None = None


def _current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return None
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident set size since it started (since its exec)."""
    try:
        with open("/proc/self/status") as status:
            kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: not Linux
    return int(kb) / 1024


def mark_start() -> None:
    """Called in the measured process once its input is loaded: the start of ``work_mb``."""
    global _start_rss_mb
    _start_rss_mb = _current_rss_mb()


def _in_child(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> dict[str, Any]:
    result = fn(*args)
    peak = peak_rss_mb()
    result["peak_mb"] = round(peak, 1)
    result["work_mb"] = None if _start_rss_mb is None else round(peak - _start_rss_mb, 1)
    return result


def isolated(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a fresh process; its dict comes back with ``peak_mb`` and ``work_mb``."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_in_child, fn, args).result()
