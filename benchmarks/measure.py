"""One measurement: one tool, one configuration, one workload, in a fresh process.

``run.py`` starts this script once per row of the report (with the peers' virtualenv's
interpreter), so that each tool's peak memory is its own. It prints one JSON object:

- ``times``: wall seconds of each timed run, after one untimed warm-up run (a warm-up
  longer than ``long_run_seconds`` counts as the first timed run). A run covers the
  statistics only: both frames are already in memory (read from parquet before the clock
  starts) and whatever a tool fits ahead of time in ``steady`` mode is fitted before it
  starts too; modelmon's cold runs each get a freshly read reference frame
  (``FreshReference``), since they consume it.
- ``rss``: resident set sizes in bytes: at start, after the imports, after the data was
  read (and, in ``steady`` mode, the reference fitted), the peak during the runs, and
  ``work``, the largest peak of a run above the RSS it started with. The peak is reset
  (``/proc/self/clear_refs``) just before each run, so it is the peak of the statistics
  and the data already in memory, not of the imports or the file reading.
- ``columns``: each column's statistic, p-value (if the method has one) and drift flag.

Usage: ``measure.py '{"tool": ..., "config": ..., "mode": ..., "workload": [...], ...}'``.
"""

from __future__ import annotations

import gc
import json
import math
import os
import pickle
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any


def status_bytes(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` figure of this process, in bytes."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


#: The bare interpreter, before numpy, pandas and pyarrow are imported.
RSS_INTERPRETER = status_bytes("VmRSS")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import ParquetColumns, Workload, read  # noqa: E402

ColumnStats = dict[str, dict[str, Any]]
Runner = Callable[[], Any]


def reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux clear_refs); False if not permitted."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _num(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return None if math.isnan(f) else f


# modelmon ------------------------------------------------------------------------------

MODELMON_METHODS = {
    "auto": ("auto", "auto"),
    "ks": ("ks", "chisquare"),
    "psi": ("psi", "psi"),
    "wasserstein": ("wasserstein", "jensenshannon"),
}


def modelmon_engine(w: Workload, config: str, mode: str, ref: Any, cur: Any
             ) -> tuple[Runner, Callable[[Any], ColumnStats]]:
    from modelmon.evaluation import column_drifted
    from modelmon.stats.dataset import ColumnRequest, fit_reference, score_drift, score_window
    from modelmon.stats.drift import get_method

    num, cat = MODELMON_METHODS[config]
    requests = [ColumnRequest(n, method=num) for n in w.numeric_names]
    requests += [ColumnRequest(n, method=cat, categorical=True) for n in w.categorical_names]

    def stats(result: Any) -> ColumnStats:
        drift = result if isinstance(result, list) else result.drift
        # Judged as a check judges it, against the method's default threshold.
        return {d.name: {"method": d.result.method, "stat": d.result.statistic,
                         "p": d.result.p_value,
                         "drift": column_drifted(d.result, d.kind, get_method(
                             d.result.method, d.kind).default_threshold)} for d in drift}

    workers = 2 if mode.endswith("2") else 1
    mode = mode.rstrip("2")
    if mode == "cold":  # ``ref``: a FreshReference, handed over as `modelmon check` does
        return (lambda: score_drift(fit_reference(ref.take(), requests, workers, consume=True),
                                    cur, workers)), stats
    if mode == "window":  # ``ref`` is the fitted profile; the check reads the window too
        return (lambda: score_window(ref, cur())), stats
    if mode == "columns":  # the same, reading and scoring one column at a time
        return (lambda: score_window(ref, cur)), stats
    profile = fit_reference(ref, requests)
    if mode == "steady":
        return (lambda: score_drift(profile, cur, workers)), stats
    if mode == "check":  # drift and data quality in one pass over the columns
        return (lambda: score_window(profile, cur, workers=workers)), stats
    raise ValueError(mode)


def fit_profile(w: Workload, data_dir: Path, path: Path) -> dict[str, Any]:
    """Fit modelmon's reference profile (``auto``) and pickle it for the ``window`` mode."""
    from modelmon.stats.dataset import ColumnRequest, fit_reference

    requests = [ColumnRequest(n) for n in w.numeric_names]
    requests += [ColumnRequest(n, categorical=True) for n in w.categorical_names]
    profile = fit_reference(read(w, data_dir, "reference"), requests)
    size = 0
    for column in profile.columns.values():
        for part in (column.numeric, column.categorical):
            if part is not None:
                size += sum(getattr(part, f).nbytes for f in
                            ("sorted_values", "bin_edges", "bin_counts", "counts")
                            if hasattr(part, f))
    with path.open("wb") as fh:
        pickle.dump(profile, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return {"profile_bytes": size}


def numpy_bound(w: Workload, config: str, mode: str, ref: Any, cur: Any
                ) -> tuple[Runner, Callable[[Any], ColumnStats]]:
    """The numpy lower bound of a steady-state check: sort each numeric current column once
    (copied into one reused buffer, sorted in place), count each categorical one once (hash
    the strings to codes, then ``bincount``)."""
    import numpy as np
    import pandas as pd

    buffer = np.empty(w.rows, dtype=np.float64)

    def run() -> None:
        for name in w.numeric_names:
            np.copyto(buffer, cur[name].to_numpy())
            buffer.sort()
        for name in w.categorical_names:
            codes, _ = pd.factorize(cur[name])
            np.bincount(codes)

    return run, lambda _: {}


# scipy ---------------------------------------------------------------------------------

def scipy_tests(w: Workload, config: str, mode: str, ref: Any, cur: Any
                ) -> tuple[Runner, Callable[[Any], ColumnStats]]:
    """scipy's functions column by column, the way a user would call them."""
    import numpy as np
    import pandas as pd
    from scipy import stats
    from scipy.spatial import distance

    def counts(name: str) -> tuple[Any, Any]:
        both = pd.concat([ref[name].value_counts(), cur[name].value_counts()], axis=1)
        table = both.fillna(0).to_numpy(dtype=np.float64).T
        return table[0], table[1]

    def run() -> ColumnStats:
        out: ColumnStats = {}
        for name in w.numeric_names:
            a, b = ref[name].to_numpy(), cur[name].to_numpy()
            if config == "ks":
                res = stats.ks_2samp(a, b)
                out[name] = {"stat": float(res.statistic), "p": float(res.pvalue),
                             "drift": bool(res.pvalue < 0.05)}
            else:
                raw = stats.wasserstein_distance(a, b)
                normed = raw / float(np.std(a))
                out[name] = {"stat": normed, "raw": raw, "p": None, "drift": bool(normed >= 0.1)}
        for name in w.categorical_names:
            r, c = counts(name)
            if config == "ks":
                chi = stats.chi2_contingency(np.vstack([r, c]), correction=False)
                out[name] = {"stat": float(chi.statistic), "p": float(chi.pvalue),
                             "drift": bool(chi.pvalue < 0.05)}
            else:
                js = float(distance.jensenshannon(r, c))
                out[name] = {"stat": js, "p": None, "drift": bool(js >= 0.1)}
        return out

    return run, dict


# Evidently -----------------------------------------------------------------------------

EVIDENTLY_OPTIONS: dict[str, dict[str, str]] = {
    "default": {},
    "ks": {"num_method": "ks", "cat_method": "chisquare"},
    "psi": {"method": "psi"},
    "wasserstein": {"num_method": "wasserstein", "cat_method": "jensenshannon"},
}
#: Evidently's drift scores that are p-values (drift below the threshold).
EVIDENTLY_P_VALUES = {"ks", "chisquare", "z"}


def evidently_preset(w: Workload, config: str, mode: str, ref: Any, cur: Any
              ) -> tuple[Runner, Callable[[Any], ColumnStats]]:
    """Evidently's data drift preset: build both datasets and run the report."""
    # The peers live in the benchmark's virtualenv only.
    from evidently import (  # type: ignore[import-not-found,unused-ignore]
        DataDefinition,
        Dataset,
        Report,
    )
    from evidently.presets import DataDriftPreset  # type: ignore[import-not-found,unused-ignore]

    definition = DataDefinition(numerical_columns=w.numeric_names,
                                categorical_columns=w.categorical_names)

    def run() -> Any:
        report = Report([DataDriftPreset(**EVIDENTLY_OPTIONS[config])])
        return report.run(Dataset.from_pandas(cur, data_definition=definition),
                          Dataset.from_pandas(ref, data_definition=definition))

    def stats(snapshot: Any) -> ColumnStats:
        out: ColumnStats = {}
        for metric in snapshot.dict()["metrics"]:
            conf = metric["config"]
            if not conf.get("type", "").endswith("ValueDrift"):
                continue
            method, threshold, value = conf["method"], conf["threshold"], metric["value"]
            is_p = method in EVIDENTLY_P_VALUES
            drift = value < threshold if is_p else value >= threshold
            out[conf["column"]] = {"method": method, "stat": None if is_p else _num(value),
                                   "p": _num(value) if is_p else None, "drift": bool(drift)}
        return out

    return run, stats


# NannyML -------------------------------------------------------------------------------

NANNYML_METHODS = {
    "default": (None, None),
    "ks": ("kolmogorov_smirnov", "chi2"),
    "wasserstein": ("wasserstein", "jensen_shannon"),
}


def nannyml_calculator(w: Workload, config: str, mode: str, ref: Any, cur: Any
            ) -> tuple[Runner, Callable[[Any], ColumnStats]]:
    """NannyML's univariate drift calculator, the whole window as one chunk."""
    import nannyml as nml  # type: ignore[import-not-found,unused-ignore]

    num, cat = NANNYML_METHODS[config]

    def calculator() -> Any:
        return nml.UnivariateDriftCalculator(
            column_names=w.columns, treat_as_categorical=w.categorical_names or None,
            continuous_methods=[num] if num else None,
            categorical_methods=[cat] if cat else None, chunk_number=1).fit(ref)

    def stats(result: Any) -> ColumnStats:
        frame = result.filter(period="analysis").to_df()
        out: ColumnStats = {}
        for column, method, field in frame.columns:
            if field == "value" and column != "chunk":
                out[column] = {"method": method, "stat": _num(frame[(column, method, field)]
                                                              .iloc[0]), "p": None}
        return out

    if mode == "cold":
        return (lambda: calculator().calculate(cur)), stats
    fitted = calculator()
    return (lambda: fitted.calculate(cur)), stats


class FreshReference:
    """The reference frame for a tool that consumes it (modelmon's cold check sorts the
    frame it loaded in place, ``fit_reference(consume=True)``): read again from parquet
    before each run, outside the clock and the peak, so every run gets a frame of its
    own."""

    def __init__(self, w: Workload, data_dir: Path, first: Any) -> None:
        self.w, self.data_dir, self.frame = w, data_dir, first

    def before(self) -> None:
        if self.frame is None:
            gc.collect()
            self.frame = read(self.w, self.data_dir, "reference")
            gc.collect()  # the read's own views of the frame, which would keep it shared

    def take(self) -> Any:
        frame, self.frame = self.frame, None
        return frame


TOOLS = {"modelmon": modelmon_engine, "bound": numpy_bound, "scipy": scipy_tests,
         "evidently": evidently_preset, "nannyml": nannyml_calculator}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    rss_start = RSS_INTERPRETER
    w = Workload(*spec["workload"])
    data_dir = Path(spec["data_dir"])
    tool = TOOLS[spec["tool"]]
    # Import the tool's libraries before the baseline: run a tiny instance of it.
    warnings.simplefilter("ignore")
    import numpy as np
    import pandas as pd
    import scipy

    versions = {"python": sys.version.split()[0], "numpy": np.__version__,
                "scipy": scipy.__version__, "pandas": pd.__version__}
    if spec["tool"] == "evidently":
        import evidently.presets  # type: ignore[import-not-found,unused-ignore]

        versions["evidently"] = evidently.__version__
    elif spec["tool"] == "nannyml":
        import nannyml  # type: ignore[import-not-found,unused-ignore]

        versions["nannyml"] = nannyml.__version__
    elif spec["tool"] == "modelmon":
        import modelmon.stats.dataset

        versions["modelmon"] = modelmon.__version__
    rss_imports = status_bytes("VmRSS")

    cur: Any
    if spec["mode"] in ("window", "columns"):  # the fitted profile, kept between checks
        with Path(spec["profile"]).open("rb") as fh:
            ref = pickle.load(fh)
        if spec["mode"] == "window":  # as `modelmon check` reads a parquet window
            from modelmon.sources.url import read_parquet

            cur = lambda: read_parquet(str(w.path(data_dir, "current")), None)  # noqa: E731
        else:
            cur = ParquetColumns(w.path(data_dir, "current"))
    else:
        ref = read(w, data_dir, "reference")
        cur = read(w, data_dir, "current")
    before: Callable[[], None] | None = None
    if spec["tool"] == "modelmon" and spec["mode"] in ("cold", "cold2"):
        ref = FreshReference(w, data_dir, ref)
        before = ref.before
    run, stats = tool(w, spec["config"], spec["mode"], ref, cur)
    if spec["mode"] not in ("cold", "cold2"):
        del ref  # steady state: only what was fitted is kept
    gc.collect()
    rss_ready = status_bytes("VmRSS")

    peak = work = 0
    peak_reset = True

    def timed() -> tuple[float, Any]:
        """One run, its peak RSS reset just before it (after ``before``). Its work is the
        peak above the RSS with the data ready; after a fresh read of the reference,
        above the RSS the read left (the allocator need not reuse the freed frame's pages
        at once, which would otherwise count the read's leftovers as the run's)."""
        nonlocal peak, work, peak_reset
        base = rss_ready
        if before is not None:
            before()
            base = status_bytes("VmRSS")
        peak_reset = reset_peak() and peak_reset
        started = time.perf_counter()
        out = run()
        elapsed = time.perf_counter() - started
        high = status_bytes("VmHWM")
        peak, work = max(peak, high), max(work, high - base)
        return elapsed, out

    warmup, result = timed()
    times: list[float] = []
    repeats = int(spec["repeats"])
    if warmup > float(spec["long_run_seconds"]):
        # A run this long warms itself up: it is the first timed one.
        times.append(warmup)
        repeats -= 1
    # At least ``repeats`` runs; a short row keeps going until its runs add up to
    # ``min_seconds`` (at most ``max_runs``), so that its median is not three samples of
    # scheduler noise.
    min_seconds = float(spec.get("min_seconds", 0.0))
    max_runs = max(int(spec.get("max_runs", repeats)), repeats)
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < max_runs):
        result = None
        elapsed, result = timed()
        times.append(elapsed)
    columns = stats(result)
    return {
        "times": times, "warmup": warmup,
        "rss": {"start": rss_start, "imports": rss_imports, "ready": rss_ready, "peak": peak,
                "work": work, "peak_reset": peak_reset},
        "columns": columns,
        "versions": versions,
    }


def ks_pvalues() -> list[dict[str, Any]]:
    """KS p-values of mildly drifted columns (the asymptotic path, N*D^2 from 2.6 to 16):
    modelmon's ``ks_asymptotic_pvalue`` against ``scipy.stats.kstwo.sf``, the call scipy's
    ``ks_2samp`` makes for the same column; best of a few runs each."""
    from scipy import stats

    from modelmon.stats.drift.ks import ks_asymptotic_pvalue

    def best(fn: Callable[..., Any], args: tuple[Any, ...], runs: int) -> tuple[float, float]:
        times: list[float] = []
        value = math.nan
        for _ in range(runs):
            started = time.perf_counter()
            value = float(fn(*args))
            times.append(time.perf_counter() - started)
        return min(times), value

    rows = []
    for rows_per_side in (100_000, 1_000_000):
        en = rows_per_side // 2
        for z in (1.6, 2.5, 4.0):
            d = z / math.sqrt(en)
            ours_s, ours = best(ks_asymptotic_pvalue, (d, rows_per_side, rows_per_side), 5)
            scipy_s, want = best(stats.kstwo.sf, (d, float(en)), 2)
            rows.append({"rows": rows_per_side, "d": d, "p": want, "ours_p": ours,
                         "ours_s": ours_s, "scipy_s": scipy_s})
    return rows


def main() -> None:
    spec = json.loads(sys.argv[1])
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if spec["mode"] == "pvalues":
        print(json.dumps(ks_pvalues()))
        return
    if spec["mode"] == "fit":
        out = fit_profile(Workload(*spec["workload"]), Path(spec["data_dir"]),
                          Path(spec["profile"]))
    else:
        out = measure(spec)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
