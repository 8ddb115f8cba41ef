"""Micro-benchmark of the steady-state check against the numpy bound, in one process.

``python benchmarks/micro.py [--rows N] [--columns N] [--repeats N] [--methods ks,...]``
fits modelmon's profile of a workload's numeric columns (``workloads.numeric_column``), then
times, interleaved and many times over, the numpy bound (copy each current column into one
buffer and sort it) and ``score_drift`` with each method, plus the KS statistic and p-value
alone on the sorted columns. It prints each figure as a ratio to the bound (min and median
over the repetitions), so that a noisy machine slows both sides alike. For development;
``run.py`` makes the report.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))

from modelmon.stats.dataset import ColumnRequest, fit_reference, score_drift
from modelmon.stats.drift.ks import ks_asymptotic_pvalue, ks_statistic
from workloads import numeric_column


def frames(rows: int, columns: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    names = [f"x{i:03d}" for i in range(columns)]
    ref = pd.DataFrame({n: numeric_column(i, rows, "reference") for i, n in enumerate(names)})
    cur = pd.DataFrame({n: numeric_column(i, rows, "current") for i, n in enumerate(names)})
    return ref, cur


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--columns", type=int, default=20)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--methods", default="ks,wasserstein,auto")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    ref, cur = frames(args.rows, args.columns)
    buffer = np.empty(args.rows)

    def bound() -> None:
        for name in cur.columns:
            np.copyto(buffer, cur[name].to_numpy())
            buffer.sort()

    def check(method: str) -> Callable[[], object]:
        profile = fit_reference(ref, [ColumnRequest(n, method=method) for n in ref.columns])
        return lambda: score_drift(profile, cur, args.workers)

    runs: dict[str, Callable[[], object]] = {"bound": bound}
    runs.update((method, check(method)) for method in args.methods.split(","))
    ks = fit_reference(ref, [ColumnRequest(n, method="ks") for n in ref.columns])
    columns = [(ks.columns[n].numeric, np.sort(cur[n].to_numpy())) for n in cur.columns]
    dists = [ks_statistic(p.sorted_values, c) for p, c in columns if p is not None]

    def statistic_only() -> None:
        for prof, c in columns:
            assert prof is not None
            ks_statistic(prof.sorted_values, c, prof.grid)

    def pvalue_only() -> None:
        for d in dists:
            ks_asymptotic_pvalue(d, args.rows, args.rows)

    runs["ks statistic"] = statistic_only
    runs["ks p-value"] = pvalue_only
    times: dict[str, list[float]] = {k: [] for k in runs}
    for run in runs.values():
        run()  # warm-up
    for _ in range(args.repeats):
        for key, run in runs.items():
            started = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - started)
    low, mid = min(times["bound"]), statistics.median(times["bound"])
    print(f"{args.columns} numeric x {args.rows} rows, {args.workers} worker(s); "
          f"bound {low * 1e3:.2f} ms (min), {mid * 1e3:.2f} ms (median)")
    for key, ts in times.items():
        if key != "bound":
            print(f"  {key:14} / bound: min {min(ts) / low:.3f}  "
                  f"median {statistics.median(ts) / mid:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
