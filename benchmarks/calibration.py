"""Calibration of modelmon's drift verdicts: false alarms without drift, power against
Evidently's defaults, and the effect floor from 1,000 to 1,000,000 rows.

Run by ``make calibration``; writes ``benchmarks/CALIBRATION.md`` (do not edit it by hand)
and the raw figures to ``${MODELMON_CACHE:-~/.cache/modelmon}/calibration-last.json``
(``--from-json`` re-renders the report from them without measuring again).

It scores columns the way a check does: ``fit_column`` + ``score_column`` from
``modelmon.stats.dataset`` (the checkout this file sits in, ``operator/``), judged by
``modelmon.evaluation``'s ``column_drifted`` (the raw test: p < 0.05, or a distance at its
default threshold) or ``column_verdict`` (the full verdict of a default spec, with the
effect floor ``drift.minEffect``). Evidently runs in the benchmark's virtualenv (see
``run.py``'s ``ensure_venv``) through this same file's ``--evidently-worker`` mode, one
``Report([ValueDrift(column=...)])`` per split, on the very arrays modelmon scored: they are
drawn once, here, with fixed seeds, and handed over as ``.npy`` files.

Only stdlib and numpy are imported at module level, so the worker runs in the virtualenv.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from peers import bench_python, cache_dir, machine

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REPORT = HERE / "CALIBRATION.md"

SEED = 20_261_205
ALPHA = 0.05
#: Every null rate of a test at ALPHA must land within this band.
BAND = (0.03, 0.07)

Array = NDArray[Any]


# The data ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of column: how one sample of it is drawn, with or without a change."""

    name: str
    family: str  # continuous | heavy-tailed | discrete | categorical
    description: str
    labels: tuple[str, ...] = ()  # categorical: the labels of the codes drawn, "new" last

    @property
    def categorical(self) -> bool:
        return self.family == "categorical"


ZIPF_SHARES = (1.0 / np.arange(1, 11)) / (1.0 / np.arange(1, 11)).sum()
BINARY_SHARES = np.array([0.7, 0.3])

KINDS = {k.name: k for k in (
    Kind("normal", "continuous", "standard normal"),
    Kind("student-t3", "heavy-tailed", "Student t, 3 degrees of freedom"),
    Kind("lognormal", "heavy-tailed", "log-normal, sigma 1"),
    Kind("poisson", "discrete", "Poisson counts, mean 3"),
    Kind("uniform-int", "discrete", "uniform integers 0-9"),
    Kind("rounded", "discrete", "standard normal rounded to 1 decimal"),
    Kind("geometric", "discrete", "geometric counts from 0, p = 0.3"),
    Kind("zero-exp", "discrete", "half zeros, half exponential (mean 1)"),
    Kind("zipf-10", "categorical", "10 categories, Zipf shares (34 % to 3 %)",
         (*(f"c{i}" for i in range(10)), "new")),
    Kind("binary", "categorical", "2 categories, 70 / 30", ("yes", "no", "new")),
)}


@dataclass(frozen=True, slots=True)
class Change:
    """What differs in the current window: ``shift`` (mean, in standard deviations),
    ``scale`` (spread, a factor), ``reweight`` (percentage points moved from the largest
    category to the smallest), ``new`` (share of the window in a category the reference
    never had); ``none`` for no drift."""

    what: str = "none"
    level: float = 0.0

    @property
    def title(self) -> str:
        if self.what == "shift":
            return f"mean +{self.level:g} sd"
        if self.what == "scale":
            return f"sd x{self.level:g}"
        if self.what == "reweight":
            return f"{self.level:g} points moved"
        if self.what == "new":
            return f"new category, {self.level:.0%}"
        return "no drift"


NO_CHANGE = Change()


def _shares(kind: Kind, change: Change) -> Array:
    base = ZIPF_SHARES if kind.name == "zipf-10" else BINARY_SHARES
    shares = np.append(base, 0.0)
    if change.what == "reweight":
        moved = change.level / 100
        shares[0] -= moved
        shares[len(base) - 1] += moved
    elif change.what == "new":
        shares = np.append(base * (1 - change.level), change.level)
    return shares


def draw(kind: Kind, change: Change, rng: np.random.Generator, shape: tuple[int, int]
         ) -> Array:
    """``shape`` (splits, rows) values of ``kind`` after ``change``: floats for the numeric
    kinds, codes into ``kind.labels`` for the categorical ones."""
    d = change.level if change.what == "shift" else 0.0
    f = change.level if change.what == "scale" else 1.0
    name = kind.name
    if kind.categorical:
        shares = _shares(kind, change)
        return rng.choice(len(shares), size=shape, p=shares).astype(np.int16)
    if name == "normal":
        return rng.normal(d, f, shape)
    if name == "rounded":
        return np.round(rng.normal(d, f, shape), 1)
    if name == "student-t3":
        return f * rng.standard_t(3, shape) + d * math.sqrt(3.0)
    if name == "lognormal":
        sd = math.sqrt((math.e - 1) * math.e)
        return f * rng.lognormal(0.0, 1.0, shape) + d * sd
    if name == "poisson":
        return rng.poisson(3.0 + d * math.sqrt(3.0), shape).astype(np.float64)
    if name == "uniform-int":
        return rng.integers(0, 10, shape).astype(np.float64)
    if name == "geometric":
        return (rng.geometric(0.3, shape) - 1).astype(np.float64)
    if name == "zero-exp":
        return np.where(rng.random(shape) < 0.5, 0.0, rng.exponential(1.0, shape))
    raise ValueError(name)


def rng_for(*key: object) -> np.random.Generator:
    """The generator of one cell: the seed and a stable hash of the cell's name."""
    return np.random.default_rng([SEED, zlib.crc32(repr(key).encode())])


@dataclass(frozen=True, slots=True)
class Cell:
    """``splits`` pairs of windows: a reference of ``kind`` and a current one after
    ``change``."""

    section: str  # null | power
    kind: str
    change: Change
    ref_rows: int
    cur_rows: int
    splits: int

    @property
    def key(self) -> str:
        return (f"{self.section}-{self.kind}-{self.change.what}-{self.change.level:g}-"
                f"{self.ref_rows}x{self.cur_rows}")

    def data(self) -> tuple[Array, Array]:
        k = KINDS[self.kind]
        rng = rng_for(self.section, self.kind, self.change, self.ref_rows, self.cur_rows)
        ref = draw(k, NO_CHANGE, rng, (self.splits, self.ref_rows))
        cur = draw(k, self.change, rng, (self.splits, self.cur_rows))
        return ref, cur


POWER_CHANGES: dict[str, tuple[Change, ...]] = {
    "normal": (Change("shift", 0.1), Change("shift", 0.2), Change("shift", 0.3),
               Change("scale", 1.2), Change("scale", 1.5)),
    "student-t3": (Change("shift", 0.1), Change("shift", 0.2), Change("shift", 0.3),
                   Change("scale", 1.2), Change("scale", 1.5)),
    "rounded": (Change("shift", 0.1), Change("shift", 0.2), Change("shift", 0.3),
                Change("scale", 1.2), Change("scale", 1.5)),
    "poisson": (Change("shift", 0.1), Change("shift", 0.2), Change("shift", 0.3)),
    "zipf-10": (Change("reweight", 5), Change("reweight", 10), Change("new", 0.05),
                Change("new", 0.10)),
    "binary": (Change("reweight", 5), Change("reweight", 10), Change("new", 0.05),
               Change("new", 0.10)),
}
FLOOR_SHIFTS = (0.01, 0.03, 0.1, 0.3)


@dataclass(frozen=True, slots=True)
class Plan:
    null_splits: int
    null_sizes: tuple[tuple[int, int], ...]
    power_splits: int
    power_sizes: tuple[tuple[int, int], ...]
    evidently_null_sizes: tuple[tuple[int, int], ...]
    floor_splits: dict[int, int]  # rows a side -> splits

    def null_cells(self) -> list[Cell]:
        return [Cell("null", k, NO_CHANGE, r, c, self.null_splits)
                for r, c in self.null_sizes for k in KINDS]

    def power_cells(self) -> list[Cell]:
        return [Cell("power", k, ch, r, c, self.power_splits)
                for r, c in self.power_sizes for k, changes in POWER_CHANGES.items()
                for ch in changes]

    def evidently_null_cells(self) -> list[Cell]:
        """Evidently's null rates: the first ``power_splits`` of modelmon's null cells."""
        return [Cell("null", k, NO_CHANGE, r, c, self.null_splits)
                for r, c in self.evidently_null_sizes for k in KINDS]


FULL = Plan(null_splits=2000, null_sizes=((200, 200), (1000, 1000), (1000, 200)),
            power_splits=500, power_sizes=((200, 200), (1000, 1000)),
            evidently_null_sizes=((200, 200), (1000, 1000)),
            floor_splits={1_000: 500, 10_000: 200, 100_000: 50, 1_000_000: 20})
QUICK = Plan(null_splits=40, null_sizes=((200, 200), (1000, 200)),
             power_splits=20, power_sizes=((200, 200),),
             evidently_null_sizes=((200, 200),),
             floor_splits={1_000: 10, 10_000: 4})


# modelmon ------------------------------------------------------------------------------

def p_value_methods() -> dict[str, list[str]]:
    """Every registered method with a p-value, by the kind it scores."""
    from modelmon.stats.drift import methods

    out: dict[str, list[str]] = {"numeric": [], "categorical": []}
    for m in methods():
        if m.uses_p_value:
            out[m.kind].append(m.name)
    return out


class Scorer:
    """One column scored as a check scores it, judged raw and by a default spec's
    verdict (with and without the effect floor)."""

    def __init__(self) -> None:
        from modelmon.api.v1alpha1 import ModelMonitorSpec

        def spec(drift: dict[str, Any]) -> ModelMonitorSpec:
            return ModelMonitorSpec.model_validate({
                "model": {"name": "calibration", "task": "binaryClassification"},
                "reference": {"source": {"url": "reference.csv"}},
                "current": {"source": {"url": "current.csv"}}, "drift": drift})

        self.spec = spec({})
        self.no_floor = spec({"minEffect": {"numeric": 0.0, "categorical": 0.0}})
        self.floor = {"numeric": self.spec.drift.min_effect.numeric,
                      "categorical": self.spec.drift.min_effect.categorical}

    def series(self, kind: Kind, values: Array) -> Any:
        import pandas as pd

        if kind.categorical:
            return pd.Series(np.asarray(kind.labels, dtype=object)[values])
        return pd.Series(values)

    def score(self, kind: Kind, method: str, ref: Array, cur: Array, verdict: bool = True
              ) -> tuple[str, str | None, bool, bool, bool]:
        """(method used, message when not scored, raw flag, verdict, verdict without the
        floor); without ``verdict`` only the raw flag (the verdicts are False)."""
        from modelmon.evaluation import column_drifted
        from modelmon.evaluation.judge import column_verdict
        from modelmon.stats.dataset import ColumnDrift, ColumnRequest, fit_column, score_column
        from modelmon.stats.drift import get_method

        profile = fit_column(self.series(kind, ref), ColumnRequest("x", method=method),
                             len(ref))
        result = score_column(profile, self.series(kind, cur))
        if result.statistic is None:
            return result.method, result.message, False, False, False
        threshold = get_method(result.method, profile.kind).default_threshold
        raw = column_drifted(result, profile.kind, threshold)
        if not verdict:
            return result.method, None, raw, False, False
        column = ColumnDrift("x", "feature", profile.kind, result)
        return (result.method, None, raw, column_verdict(self.spec, column).drifted,
                column_verdict(self.no_floor, column).drifted)


def tally(scorer: Scorer, kind: Kind, method: str, ref: Array, cur: Array,
          judge: bool = True) -> dict[str, Any]:
    """Counts over the splits: the methods used, the splits not scored (with why), the
    raw flags and (with ``judge``) the verdicts with and without the floor."""
    used: Counter[str] = Counter()
    unscored: Counter[str] = Counter()
    raw = verdict = no_floor = 0
    for a, b in zip(ref, cur, strict=True):
        name, message, r, v, n = scorer.score(kind, method, a, b, judge)
        used[name] += 1
        if message is not None:
            unscored[message] += 1
        raw, verdict, no_floor = raw + r, verdict + v, no_floor + n
    splits = len(ref)
    return {"method": method, "used": dict(used), "splits": splits,
            "scored": splits - sum(unscored.values()), "unscored": dict(unscored),
            "raw": raw, "verdict": verdict, "no_floor": no_floor}


def modelmon_null(plan: Plan, scorer: Scorer, log: Callable[[str], None]
                  ) -> list[dict[str, Any]]:
    by_kind = p_value_methods()
    rows = []
    for cell in plan.null_cells():
        kind = KINDS[cell.kind]
        ref, cur = cell.data()
        for method in [*by_kind["categorical" if kind.categorical else "numeric"], "auto"]:
            t = tally(scorer, kind, method, ref, cur, judge=False)
            if t["scored"] == 0:  # the method does not apply to this kind (ztest on 10)
                continue
            del t["verdict"], t["no_floor"]  # the raw test only
            rows.append({"kind": cell.kind, "ref_rows": cell.ref_rows,
                         "cur_rows": cell.cur_rows, **t})
        log(f"null {cell.kind} {cell.ref_rows}x{cell.cur_rows}")
    return rows


def modelmon_power(plan: Plan, scorer: Scorer, log: Callable[[str], None]
                   ) -> list[dict[str, Any]]:
    rows = []
    for cell in plan.power_cells():
        ref, cur = cell.data()
        t = tally(scorer, KINDS[cell.kind], "auto", ref, cur)
        rows.append({"key": cell.key, "kind": cell.kind, "what": cell.change.what,
                     "level": cell.change.level, "ref_rows": cell.ref_rows,
                     "cur_rows": cell.cur_rows, **t})
        log(f"power {cell.key}")
    return rows


def modelmon_floor(plan: Plan, scorer: Scorer, log: Callable[[str], None]
                   ) -> list[dict[str, Any]]:
    kind = KINDS["normal"]
    rows = []
    for n, splits in plan.floor_splits.items():
        for shift in FLOOR_SHIFTS:
            rng = rng_for("floor", n, shift)
            methods = ("ks", "auto")
            used = {m: Counter[str]() for m in methods}
            verdicts = dict.fromkeys(methods, 0)
            no_floor = dict.fromkeys(methods, 0)
            for _ in range(splits):  # one split at a time: 1M rows a side is 16 MB
                ref = draw(kind, NO_CHANGE, rng, (1, n))[0]
                cur = draw(kind, Change("shift", shift), rng, (1, n))[0]
                for m in methods:
                    name, _, _, verdict, flagged = scorer.score(kind, m, ref, cur)
                    used[m][name] += 1
                    verdicts[m] += verdict
                    no_floor[m] += flagged
            rows += [{"rows": n, "shift": shift, "splits": splits, "method": m,
                      "used": dict(used[m]), "verdict": verdicts[m], "no_floor": no_floor[m]}
                     for m in methods]
            log(f"floor {n} {shift}")
    return rows


# Evidently -----------------------------------------------------------------------------

def evidently_worker(manifest: Path) -> None:
    """In the benchmark virtualenv: Evidently's default drift of each cell's splits (the
    cells of ``manifest``, their arrays beside it), one single-column report per split,
    into ``worker_output(manifest)``."""
    import warnings

    warnings.simplefilter("ignore")
    import evidently  # type: ignore[import-not-found,unused-ignore]
    import pandas as pd
    import scipy
    from evidently import (  # type: ignore[import-not-found,unused-ignore]
        DataDefinition,
        Dataset,
        Report,
    )
    from evidently.metrics import ValueDrift  # type: ignore[import-not-found,unused-ignore]

    directory = manifest.parent
    results = []
    for cell in json.loads(manifest.read_text())["cells"]:
        ref = np.load(directory / f"{cell['key']}.ref.npy")
        cur = np.load(directory / f"{cell['key']}.cur.npy")
        labels = np.asarray(cell["labels"], dtype=object)
        definition = (DataDefinition(categorical_columns=["x"]) if cell["categorical"]
                      else DataDefinition(numerical_columns=["x"]))
        flagged = 0
        used: Counter[str] = Counter()
        for split_ref, split_cur in zip(ref, cur, strict=True):
            a, b = ((labels[split_ref], labels[split_cur]) if cell["categorical"]
                    else (split_ref, split_cur))
            snapshot = Report([ValueDrift(column="x")]).run(
                Dataset.from_pandas(pd.DataFrame({"x": b}), data_definition=definition),
                Dataset.from_pandas(pd.DataFrame({"x": a}), data_definition=definition))
            metric = snapshot.dict()["metrics"][0]
            method, threshold = metric["config"]["method"], metric["config"]["threshold"]
            value = float(metric["value"])
            # Evidently's p-value tests drift below their threshold, its distances at or
            # above it.
            flagged += value < threshold if "p_value" in method else value >= threshold
            used[method] += 1
        results.append({"key": cell["key"], "splits": len(ref), "flagged": int(flagged),
                        "used": dict(used)})
        print(f"evidently {cell['key']}", file=sys.stderr, flush=True)
    versions = {"evidently": evidently.__version__, "numpy": np.__version__,
                "scipy": scipy.__version__, "pandas": pd.__version__,
                "python": platform.python_version()}
    worker_output(manifest).write_text(json.dumps({"cells": results, "versions": versions}))


def ensure_venv() -> Path:
    """``run.py``'s benchmark virtualenv, created from its pins when missing or stale."""
    sys.path.insert(0, str(HERE))
    from run import ensure_venv as ensure

    return ensure()


def start_evidently(plan: Plan, python: Path, directory: Path, workers: int
                    ) -> list[tuple[subprocess.Popen[str], Path]]:
    """Draw the cells Evidently scores into ``directory`` and start ``workers`` workers on
    them (cells dealt in turn; each cell is scored whole by one worker, so the figures do
    not depend on how many); each worker's manifest and the file it will write."""
    cells = []
    for cell in [*plan.evidently_null_cells(), *plan.power_cells()]:
        ref, cur = cell.data()
        n = plan.power_splits  # Evidently scores the first splits of a null cell
        np.save(directory / f"{cell.key}.ref.npy", ref[:n])
        np.save(directory / f"{cell.key}.cur.npy", cur[:n])
        kind = KINDS[cell.kind]
        cells.append({"key": cell.key, "categorical": kind.categorical,
                      "labels": list(kind.labels)})
    env = dict(os.environ, PYTHONWARNINGS="ignore", DO_NOT_TRACK="1")
    started = []
    for i in range(workers):
        manifest = directory / f"manifest-{i}.json"
        manifest.write_text(json.dumps({"cells": cells[i::workers]}))
        started.append((subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--evidently-worker",
             str(manifest)], env=env, text=True), worker_output(manifest)))
    return started


def worker_output(manifest: Path) -> Path:
    return manifest.with_suffix(".out.json")


# Running -------------------------------------------------------------------------------

def measure(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "operator"))  # the checkout this script belongs to
    import pandas as pd
    import scipy

    import modelmon
    from modelmon.stats.drift import AUTO_SMALL_REFERENCE_ROWS

    plan = QUICK if args.quick else FULL
    if args.splits:
        plan = Plan(args.splits, plan.null_sizes, plan.power_splits, plan.power_sizes,
                    plan.evidently_null_sizes, plan.floor_splits)
    if args.power_splits:
        plan = Plan(plan.null_splits, plan.null_sizes, args.power_splits, plan.power_sizes,
                    plan.evidently_null_sizes, plan.floor_splits)
    if args.floor_rows:
        plan = Plan(plan.null_splits, plan.null_sizes, plan.power_splits, plan.power_sizes,
                    plan.evidently_null_sizes,
                    {n: s for n, s in plan.floor_splits.items() if n <= args.floor_rows})
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    python = None
    if not args.no_evidently:
        # A full run creates (or updates) the benchmark virtualenv as ``make bench`` does; a
        # quick one uses it only if it is there.
        python = bench_python() if args.quick else ensure_venv()
        if python is None:
            log("no benchmark virtualenv (make bench creates it): Evidently not run")
    evidently: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="modelmon-calibration-") as tmp:
        workers = (start_evidently(plan, python, Path(tmp), args.evidently_workers)
                   if python else [])
        scorer = Scorer()
        null = modelmon_null(plan, scorer, log)
        power = modelmon_power(plan, scorer, log)
        floor = modelmon_floor(plan, scorer, log)
        for worker, output in workers:
            if worker.wait() != 0:
                raise RuntimeError("an Evidently worker failed (see its output above)")
            part = json.loads(output.read_text())
            evidently["versions"] = part["versions"]
            evidently.setdefault("cells", []).extend(part["cells"])
        log("done")
    versions = {"modelmon": modelmon.__version__, "numpy": np.__version__,
                "scipy": scipy.__version__, "pandas": pd.__version__,
                "python": platform.python_version()}
    return {
        "meta": {
            "command": " ".join(["python", "benchmarks/calibration.py",
                                 *map(shlex.quote, args.argv)]),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": round(time.monotonic() - started, 1),
            "machine": machine(), "versions": versions,
            "evidently_versions": evidently.get("versions"),
            "seed": SEED, "alpha": ALPHA, "band": list(BAND), "quick": args.quick,
            "null_splits": plan.null_splits, "power_splits": plan.power_splits,
            "floor_splits": {str(k): v for k, v in plan.floor_splits.items()},
            "auto_small_reference_rows": AUTO_SMALL_REFERENCE_ROWS,
            "floor": scorer.floor,
        },
        "null": null, "power": power, "floor": floor,
        "evidently": evidently.get("cells", []),
    }


# The report ----------------------------------------------------------------------------

def within(rate: float) -> bool:
    return BAND[0] <= rate <= BAND[1]


def rate_cell(rate: float) -> str:
    """A null rate, marked when it is outside the band."""
    text = f"{rate:.3f}"
    return text if within(rate) else f"**{text}** ✗"


def used_text(used: dict[str, int]) -> str:
    """The method(s) a cell was scored with, the most used first."""
    names = sorted(used.items(), key=lambda kv: -kv[1])
    if len(names) == 1:
        return names[0][0]
    return ", ".join(f"{n} {c}" for n, c in names)


def half_width(splits: int) -> float:
    """Half the 95 % binomial interval of a rate of ALPHA over ``splits`` splits."""
    return 1.96 * math.sqrt(ALPHA * (1 - ALPHA) / splits)


def size_text(ref_rows: int, cur_rows: int) -> str:
    return f"{ref_rows:,} vs {cur_rows:,}"


def outside(run: dict[str, Any]) -> list[str]:
    """modelmon's null cells outside the band."""
    return [f"{r['method']} on {r['kind']} {size_text(r['ref_rows'], r['cur_rows'])}: "
            f"{r['raw'] / r['scored']:.3f}" for r in run["null"]
            if not within(r["raw"] / r["scored"])]


def power_verdict(mm: int, ev: dict[str, Any], ev_null: dict[str, Any] | None) -> str:
    """Whether modelmon's ``mm`` flags match Evidently's cell ``ev``, judged only where
    Evidently's null cell of the same kind and size (``ev_null``) is within the band and
    scored with the same test as ``ev``."""
    if ev_null is None:
        return "Evidently not run"
    null_rate = ev_null["flagged"] / ev_null["splits"]
    if set(ev["used"]) != set(ev_null["used"]):
        return (f"n/a: Evidently used {used_text(ev['used'])} here, its null is of "
                f"{used_text(ev_null['used'])}")
    if not within(null_rate):
        return f"n/a: Evidently not calibrated (null {null_rate:.3f})"
    splits, flagged = ev["splits"], ev["flagged"]
    if mm >= flagged:
        return "yes"
    pm, pe = mm / splits, flagged / splits
    se = math.sqrt((pm * (1 - pm) + pe * (1 - pe)) / splits)
    if pe - pm <= 2 * se:
        return f"lower by {pe - pm:.3f}, within noise (2 se = {2 * se:.3f})"
    return f"**NO** (lower by {pe - pm:.3f})"


def render(run: dict[str, Any]) -> str:
    meta = run["meta"]
    mach, ver = meta["machine"], meta["versions"]
    ev_ver = meta.get("evidently_versions")
    evidently = {c["key"]: c for c in run["evidently"]}
    hw = half_width(meta["null_splits"])
    lines = [
        "# Calibration of the drift verdicts",
        "",
        "Generated by `make calibration` (`benchmarks/calibration.py`); do not edit by hand. "
        "`python benchmarks/calibration.py --from-json "
        "${MODELMON_CACHE:-~/.cache/modelmon}/calibration-last.json` re-renders it from the "
        "saved figures.",
        "",
        f"- command: `{meta['command']}`" + (" (**quick mode**: few splits, the figures "
                                            "are noise)" if meta["quick"] else ""),
        f"- date: {meta['date']}; took {meta['seconds']:.0f} s",
        f"- machine: {mach['cpu']}, nproc {mach['nproc']}, {mach['arch']}, {mach['os']}",
        f"- modelmon {ver['modelmon']}, numpy {ver['numpy']}, scipy {ver['scipy']}, "
        f"pandas {ver['pandas']}, Python {ver['python']}",
        ("- Evidently " + ev_ver["evidently"] + f" (its virtualenv: numpy {ev_ver['numpy']}, "
         f"scipy {ev_ver['scipy']}, pandas {ev_ver['pandas']}, Python {ev_ver['python']})")
        if ev_ver else "- Evidently: not run (no benchmark virtualenv; `make bench` creates it)",
        f"- seed {meta['seed']} (each cell's generator: the seed and a CRC-32 of the cell's "
        f"name); splits: {meta['null_splits']} per null cell (modelmon), "
        f"{meta['power_splits']} per power cell and per Evidently null cell (the first "
        f"{meta['power_splits']} of modelmon's splits), floor: "
        + ", ".join(f"{int(k):,} rows {v}" for k, v in meta["floor_splits"].items()),
        "",
        "Each split draws a fresh reference and current window; both tools score the same "
        "arrays. modelmon scores a column as a check does (`fit_column` + `score_column`). "
        f"`auto` uses its tests up to {meta['auto_small_reference_rows']:,} reference rows "
        "and its distances (wasserstein, jensenshannon) above, so at every size of the null "
        "and power tables it runs a test. Evidently: one `Report([ValueDrift(column=\"x\")])` "
        "per split with its defaults (its own choice of test and threshold).",
        "",
        SUMMARY_MARK,
        "## False alarms without drift",
        "",
        f"Share of splits the **raw test** flags (p < {ALPHA}; `column_drifted` at the "
        "method's default threshold, no effect floor: the floor can only lower these), "
        f"reference and current drawn from the same distribution. The band is "
        f"[{BAND[0]}, {BAND[1]}]; cells outside it are marked ✗. With "
        f"{meta['null_splits']} splits a test that holds alpha lands within "
        f"{ALPHA} ± {hw:.4f} (95 % binomial interval) and Evidently's cells (over "
        f"{meta['power_splits']}) within {ALPHA} ± {half_width(meta['power_splits']):.4f}. "
        "`auto` shows the method it resolved to.",
        "",
        "| kind | data |",
        "|---|---|",
    ]
    lines += [f"| {k.name} ({k.family}) | {k.description} |" for k in KINDS.values()]
    methods = list(dict.fromkeys(r["method"] for r in run["null"]))
    sizes = list(dict.fromkeys((r["ref_rows"], r["cur_rows"]) for r in run["null"]))
    null = {(r["kind"], r["method"], r["ref_rows"], r["cur_rows"]): r for r in run["null"]}
    for ref_rows, cur_rows in sizes:
        ev_here = any(f"null-{k}-none-0-{ref_rows}x{cur_rows}" in evidently for k in KINDS)
        lines += ["", f"### {size_text(ref_rows, cur_rows)} rows", "",
                  "| kind | " + " | ".join(methods) + " | auto used"
                  + (" | Evidently default | Evidently used" if ev_here else "") + " |",
                  "|---|" + "---:|" * len(methods) + "---|"
                  + ("---:|---|" if ev_here else "")]
        for kind in KINDS:
            row = [kind]
            for m in methods:
                r = null.get((kind, m, ref_rows, cur_rows))
                row.append(rate_cell(r["raw"] / r["scored"]) if r else "")
            auto = null.get((kind, "auto", ref_rows, cur_rows))
            row.append(used_text(auto["used"]) if auto else "")
            if ev_here:
                e = evidently.get(f"null-{kind}-none-0-{ref_rows}x{cur_rows}")
                row += ([rate_cell(e["flagged"] / e["splits"]), used_text(e["used"])] if e
                        else ["", ""])
            lines.append("| " + " | ".join(row) + " |")
    out = outside(run)
    lines += ["", f"modelmon cells outside [{BAND[0]}, {BAND[1]}]: "
              + ("; ".join(out) if out else "none") + "."]

    ev_null = {(c["key"].split("-none-")[0].removeprefix("null-"),
                c["key"].rsplit("-", 1)[1]): c
               for c in run["evidently"] if c["key"].startswith("null-")}
    floor = meta["floor"]
    lines += [
        "",
        "## Power against Evidently's defaults",
        "",
        "Share of splits flagged when the current window changed. modelmon: `auto` with the "
        f"**full verdict** of a default spec (`column_verdict`: p < {ALPHA} and effect size "
        f">= `drift.minEffect`, {floor['numeric']} numeric, {floor['categorical']} "
        "categorical), and in brackets the raw test without the floor. Evidently: its "
        "default per-column drift. Mean shifts are in standard deviations of the kind (for "
        "Poisson, the mean moves by that many sd; for rounded, the normal moves before the "
        "rounding); scale multiplies the spread; re-weighting moves percentage points from "
        "the largest category to the smallest; a new category takes that share of the "
        "window, the others shrink in proportion. \"modelmon >= Evidently\" is judged only "
        f"where Evidently's null rate on the same kind and size is within [{BAND[0]}, "
        f"{BAND[1]}] (\"Evidently null\", from the null tables) and it scored the changed "
        "data with the same test as the unchanged (it can pick another, e.g. chi-square "
        "once a new category joins a binary column); a shortfall within twice the standard "
        "error of the difference is called noise.",
    ]
    power_sizes = list(dict.fromkeys((r["ref_rows"], r["cur_rows"]) for r in run["power"]))
    shortfalls = []
    judged: Counter[str] = Counter()
    for ref_rows, cur_rows in power_sizes:
        lines += ["", f"### {size_text(ref_rows, cur_rows)} rows", "",
                  "| kind | change | modelmon auto (no floor) | used | Evidently default | "
                  "Evidently used | Evidently null | modelmon >= Evidently |",
                  "|---|---|---:|---|---:|---|---:|---|"]
        for r in run["power"]:
            if (r["ref_rows"], r["cur_rows"]) != (ref_rows, cur_rows):
                continue
            e = evidently.get(r["key"])
            en = ev_null.get((r["kind"], f"{ref_rows}x{cur_rows}"))
            verdict = power_verdict(r["verdict"], e, en) if e else "Evidently not run"
            judged[verdict.split(" ", 1)[0].split(":", 1)[0].strip("*")] += 1
            if verdict.startswith("**NO"):
                shortfalls.append(f"{r['kind']} {Change(r['what'], r['level']).title} "
                                  f"{size_text(ref_rows, cur_rows)}")
            lines.append(
                f"| {r['kind']} | {Change(r['what'], r['level']).title} | "
                f"{r['verdict'] / r['splits']:.3f} ({r['raw'] / r['splits']:.3f}) | "
                f"{used_text(r['used'])} | "
                + (f"{e['flagged'] / e['splits']:.3f} | {used_text(e['used'])} | "
                   if e else " | | ")
                + (f"{rate_cell(en['flagged'] / en['splits'])} | " if en else " | ")
                + f"{verdict} |")
    lines += ["", "Power cells where modelmon is below a calibrated Evidently beyond noise: "
              + ("; ".join(shortfalls) if shortfalls else "none") + "."]

    lines += [
        "",
        "## The effect floor from 1,000 to 1,000,000 rows",
        "",
        "Normal columns, the current window's mean shifted by the given share of a standard "
        "deviation, the same rows a side. Share of splits flagged by a default spec's "
        f"verdict (floor {floor['numeric']}: the KS distance, the largest gap between the "
        "two empirical CDFs) and by the same spec with `drift.minEffect.numeric: 0` (no "
        "floor). `ks` is asked for by name; `auto` runs its test up to "
        f"{meta['auto_small_reference_rows']:,} reference rows and wasserstein (normed, "
        "threshold 0.1, no p-value and so no floor) above. For reference, a 0.05 sd shift "
        "of a normal moves its CDF by at most 0.02.",
        "",
        "| rows a side | splits | shift (sd) | ks: floor | ks: no floor | auto used | "
        "auto: floor | auto: no floor |",
        "|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    by = {(r["rows"], r["shift"], r["method"]): r for r in run["floor"]}
    for rows, shift in dict.fromkeys((r["rows"], r["shift"]) for r in run["floor"]):
        ks, auto = by[(rows, shift, "ks")], by[(rows, shift, "auto")]
        n = ks["splits"]
        lines.append(f"| {rows:,} | {n} | {shift:g} | {ks['verdict'] / n:.2f} | "
                     f"{ks['no_floor'] / n:.2f} | {used_text(auto['used'])} | "
                     f"{auto['verdict'] / n:.2f} | {auto['no_floor'] / n:.2f} |")
    lines.append("")
    at = lines.index(SUMMARY_MARK)
    lines[at:at + 1] = summary_lines(run, judged, shortfalls)
    return "\n".join(lines)


SUMMARY_MARK = "<summary>"


def summary_lines(run: dict[str, Any], judged: Counter[str], shortfalls: list[str]
                  ) -> list[str]:
    """The report's summary: the two targets and the floor at the largest size."""
    out = outside(run)
    by_method = Counter(r["method"] for r in run["null"]
                        if not within(r["raw"] / r["scored"]))
    lines = [
        "## Summary",
        "",
        f"- False alarms (modelmon, raw test at {ALPHA}): {len(run['null']) - len(out)} of "
        f"{len(run['null'])} cells within [{BAND[0]}, {BAND[1]}]"
        + (" (outside, by method: " + ", ".join(f"{m} {c}" for m, c in by_method.items())
           + ")" if out else "") + ".",
    ]
    if run["evidently"]:
        calibrated = judged["yes"] + judged["lower"] + judged["NO"]
        lines.append(
            f"- Power (modelmon auto, full verdict) against Evidently's defaults: "
            f"{calibrated} of {sum(judged.values())} cells where Evidently is calibrated; "
            f"modelmon at least as high in {judged['yes']}, lower within noise in "
            f"{judged['lower']}, lower beyond noise in {judged['NO']}"
            + (f" ({'; '.join(shortfalls)})" if shortfalls else "") + ".")
    else:
        lines.append("- Power against Evidently: not measured (Evidently not run).")
    floor = run["floor"]
    if floor:
        top = max(r["rows"] for r in floor)
        ks = [r for r in floor if r["rows"] == top and r["method"] == "ks"]
        auto = [r for r in floor if r["rows"] == top and r["method"] == "auto"]
        lines.append(
            f"- Effect floor, ks at {top:,} rows a side: "
            + ", ".join(f"{r['shift']:g} sd flagged in {r['verdict']} of {r['splits']} "
                        f"({r['no_floor']} without the floor)" for r in ks)
            + f"; auto ({used_text(auto[0]['used'])}) there: "
            + ", ".join(f"{r['shift']:g} sd in {r['verdict']}" for r in auto) + ".")
    return [*lines, ""]


def summary(run: dict[str, Any]) -> str:
    out = outside(run)
    total = len(run["null"])
    return (f"calibration: {len(out)} of {total} modelmon null cells outside "
            f"[{BAND[0]}, {BAND[1]}]" + (": " + "; ".join(out) if out else ""))


# Command line --------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true",
                   help="few splits and small sizes (the smoke test; the figures are noise)")
    p.add_argument("--splits", type=int, help="splits per null cell (default 2000)")
    p.add_argument("--power-splits", type=int,
                   help="splits per power cell and per Evidently null cell (default 500)")
    p.add_argument("--floor-rows", type=int,
                   help="the effect-floor table up to this many rows a side (default 1M)")
    p.add_argument("--no-evidently", action="store_true", help="modelmon only")
    p.add_argument("--evidently-workers", type=int, default=2,
                   help="Evidently processes, beside modelmon's (default 2; the figures "
                        "do not depend on it)")
    p.add_argument("--out", type=Path, default=REPORT, help="the markdown report")
    p.add_argument("--json", type=Path, default=cache_dir() / "calibration-last.json",
                   help="where the raw figures go")
    p.add_argument("--from-json", type=Path,
                   help="re-render the report from saved figures, measuring nothing")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a modelmon null rate is outside the band")
    p.add_argument("--evidently-worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.evidently_worker:
        evidently_worker(args.evidently_worker)
        return 0
    if args.from_json:
        run = json.loads(args.from_json.read_text())
    else:
        run = measure(args)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(run, indent=1) + "\n")
    args.out.write_text(render(run))
    print(summary(run))
    return 1 if args.strict and outside(run) else 0


if __name__ == "__main__":
    sys.exit(main())
