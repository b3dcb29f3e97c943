"""``python -m bench [NAMES...]``: run benchmarks, print a table and one JSON line per measurement.

NAMES select benchmarks by exact name or by prefix (``rank`` runs every ``rank/...``); none runs
the default set (every target of the issues, about 5 minutes), ``all`` every benchmark, ``--list``
lists them (``*``: not in the default set). JSON lines start with ``{`` so ``grep '^{'``
extracts them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench import Benchmark, Measurement, discover


def _select(benchmarks: list[Benchmark], names: Sequence[str]) -> list[Benchmark]:
    if not names:
        return [b for b in benchmarks if b.default]
    if list(names) == ["all"]:
        return benchmarks
    chosen = [
        b
        for b in benchmarks
        if any(b.name == n or b.name.startswith(n.rstrip("/") + "/") for n in names)
    ]
    unknown = [
        n
        for n in names
        if not any(b.name == n or b.name.startswith(n.rstrip("/") + "/") for b in benchmarks)
    ]
    if unknown:
        raise SystemExit(f"bench: unknown benchmark(s) {', '.join(unknown)}; see --list")
    return chosen


def _cell(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}{unit}" if abs(value) < 1000 else f"{value:.0f}{unit}"
    return f"{value}{unit}"


def _table(rows: list[dict[str, Any]]) -> str:
    header = ("bench", "seconds", "baseline", "baseline s", "speedup", "peak MB")
    body = [
        (
            r["bench"],
            _cell(r["seconds"]),
            r["baseline"] or "-",
            _cell(r["baseline_seconds"]),
            _cell(r["speedup"], "x"),
            _cell(r["peak_mb"]),
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True))
        for row in [header, *body]
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help="benchmark names or prefixes, or all (default: the default set)"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    benchmarks = discover()
    if args.list:
        for b in benchmarks:
            print(f"{b.name:<22} {' ' if b.default else '*'} {b.description}")
        return 0
    rows: list[dict[str, Any]] = []
    selected = _select(benchmarks, args.names)
    began = time.perf_counter()
    for benchmark in selected:
        print(f"# {benchmark.name}: {benchmark.description}", flush=True)
        started = time.perf_counter()
        for measurement in benchmark.run():
            missing = sorted(set(Measurement.__annotations__) - set(measurement))
            if missing:
                raise SystemExit(f"bench: {benchmark.name} gave no {', '.join(missing)}")
            for note in measurement.pop("notes", []):
                print(f"#   {note}", flush=True)
            print(json.dumps(measurement), flush=True)
            rows.append(measurement)
        # What each costs, seeding included: the default set has to stay within 5 minutes.
        print(f"#   took {time.perf_counter() - started:.1f} s", flush=True)
    if rows:
        print(_table(rows))
    print(f"# {len(selected)} benchmark(s) in {_duration(time.perf_counter() - began)}")
    return 0


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


if __name__ == "__main__":
    sys.exit(main())
