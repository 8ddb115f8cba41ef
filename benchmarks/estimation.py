"""Performance estimation without labels: modelmon's CBPE and DLE beside NannyML's, on data
with known ground truth.

Run by ``make bench-estimation``; writes ``benchmarks/ESTIMATION.md`` (do not edit it by
hand) and the raw figures to ``${MODELMON_CACHE:-~/.cache/modelmon}/estimation-last.json``
(``--from-json`` re-renders the report from them without measuring again).

The data are drawn here, with fixed seeds: per task (binary, multiclass, regression) a
labelled reference and, per scenario, an analysis set of equal windows whose true metric is
known because the labels are drawn too; all of it ``draws`` times independently (seeds
``SEED``, ``SEED + 1``, ...), so that the accuracy verdict rests on several references and
many windows rather than on the luck of one draw. Times are taken on the first draw. Both
tools get the same rows as ``.npz`` files without the analysis labels and run in their own
processes, one after the other, through this file's ``--worker`` mode: modelmon
(``stats.estimation`` of the checkout this file sits in, ``operator/``) in this interpreter,
NannyML (``CBPE``, ``DLE``) in the benchmark virtualenv (see ``run.py``'s ``ensure_venv``).
Each fits on the reference, then estimates every window of every scenario; the realized
metric of each window is computed here with scikit-learn, independent of both.

Only stdlib and numpy are imported at module level, so the worker runs in the virtualenv.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from peers import bench_python, cache_dir, machine

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REPORT = HERE / "ESTIMATION.md"

SEED = 20_261_217
#: modelmon's steady-state estimate must be at least this many times faster than NannyML's.
SPEED_GOAL = 5.0
CLASSES = ("c0", "c1", "c2")
FEATURES = ("x0", "x1", "x2", "x3")

Array = NDArray[Any]

#: Per task: modelmon's metric name -> NannyML's.
METRICS: dict[str, dict[str, str]] = {
    "binary": {"rocAuc": "roc_auc", "f1": "f1", "accuracy": "accuracy"},
    "multiclass": {"accuracy": "accuracy", "f1Macro": "f1"},
    "regression": {"mae": "mae", "rmse": "rmse"},
}
TASKS = tuple(METRICS)

SCENARIOS: dict[str, str] = {
    "none": "no shift: windows drawn like the reference",
    "harmful": "covariate shift that hurts: rows move towards the hard (noisy or "
               "overlapping) region",
    "harmless": "covariate shift that does not hurt: rows move along a direction the model "
                "handles well (parallel to the decision boundary, or in features the "
                "error does not depend on)",
    "concept": "concept shift: the inputs stay, the relation between inputs and label "
               "changes",
}
#: Scenarios the accuracy verdict counts; concept shift is reported, not judged.
JUDGED = ("none", "harmful", "harmless")


@dataclass(frozen=True, slots=True)
class Plan:
    reference_rows: int
    window_rows: int
    windows: int
    repeats: int
    rounds: int

    draws: int


FULL = Plan(20_000, 2_000, 10, 5, 3, 10)
QUICK = Plan(3_000, 500, 3, 2, 1, 1)


# The data ------------------------------------------------------------------------------

def _sigmoid(z: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _softmax(z: Array) -> Array:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _features(rng: np.random.Generator, rows: int, task: str, scenario: str,
              level: Array) -> Array:
    """Standard normal features, moved by ``level`` (0 to 1 per row) as the scenario says."""
    x = rng.normal(size=(rows, len(FEATURES)))
    lv = level[:, None]
    if scenario == "harmful":
        if task == "regression":  # into the noisy region: large |x0|
            x[:, 0] = x[:, 0] * (1 + 0.8 * level) + 1.2 * level
        else:  # towards the decision boundaries, where classes overlap
            x[:, :2] = x[:, :2] * (1 - 0.75 * lv)
    elif scenario == "harmless":
        if task == "binary":  # along the boundary 1.5 x0 + x1 = 0, and in x2, x3
            x[:, :2] += 1.5 * lv * np.array([1.0, -1.5]) / math.hypot(1.0, 1.5)
            x[:, 2:] += 1.5 * lv
        elif task == "multiclass":  # in x2, x3, which no class depends on
            x[:, 2:] += 2.0 * lv
        else:  # in x1, which the model gets exactly right, and x3
            x[:, 1] += 1.5 * level
            x[:, 3] += 2.0 * level
    return x


#: Multiclass: the true class logits are W @ (x0, x1).
_W = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def generate(task: str, scenario: str, rows: int, windows: int, seed: int
             ) -> dict[str, Array]:
    """One set of rows: features ``x``, the model's ``proba`` (binary: the positive class;
    multiclass: one column per class) and ``pred`` (class index) or regression ``pred``, and
    the true ``y``. With ``windows`` > 1 the shift grows from nothing in the first window
    to its full size in the last; ``scenario`` "reference" draws the reference."""
    rng = np.random.default_rng([seed, TASKS.index(task), list(SCENARIOS).index(scenario)
                                 if scenario in SCENARIOS else 9])
    per = rows // windows
    level = np.repeat(np.linspace(0.0, 1.0, windows) if windows > 1 else np.zeros(1), per)
    shifted = scenario if scenario in ("harmful", "harmless") else "none"
    x = _features(rng, rows, task, shifted, level)
    concept = level if scenario == "concept" else np.zeros(rows)
    if task == "binary":
        logit = 1.5 * x[:, 0] + x[:, 1]
        # The model: the right direction, slightly overconfident and biased.
        proba = _sigmoid(1.3 * logit + 0.3)
        # Concept shift: x1's effect on the label reverses.
        truth = 1.5 * x[:, 0] + (1 - 2 * concept) * x[:, 1]
        y = (rng.random(rows) < _sigmoid(truth)).astype(np.int64)
        return {"x": x, "proba": proba[:, None], "pred": (proba >= 0.5).astype(np.int64),
                "y": y}
    if task == "multiclass":
        logits = x[:, :2] @ _W.T
        proba = _softmax(1.25 * logits + np.array([0.2, 0.0, -0.2]))
        truth_w = np.stack([_W] * rows)
        truth_w[:, 1:, 1] *= (1 - 2 * concept)[:, None]  # concept: x1's role flips
        truth = np.einsum("nkf,nf->nk", truth_w, x[:, :2])
        chance = _softmax(truth)
        y = (rng.random(rows)[:, None] > np.cumsum(chance, axis=1)).sum(axis=1)
        return {"x": x, "proba": proba, "pred": proba.argmax(axis=1).astype(np.int64),
                "y": np.minimum(y, 2).astype(np.int64)}
    # Regression: the model misses a curve in x2; the noise grows with |x0|.
    pred = 2.0 * x[:, 0] + x[:, 1]
    noise = (0.3 + 0.8 * np.abs(x[:, 0])) * rng.normal(size=rows)
    curve = 0.5 * (x[:, 2] ** 2 - 1)
    target = 2.0 * x[:, 0] + (1 + 1.5 * concept) * x[:, 1] + curve + noise
    return {"x": x, "proba": np.zeros((rows, 0)), "pred": pred, "y": target}


def realized(task: str, data: dict[str, Array]) -> dict[str, float]:
    """The true metric of a window, with scikit-learn."""
    from sklearn import metrics as sk

    y, pred = data["y"], data["pred"]
    if task == "binary":
        return {"rocAuc": float(sk.roc_auc_score(y, data["proba"][:, 0])),
                "f1": float(sk.f1_score(y, pred)),
                "accuracy": float(sk.accuracy_score(y, pred))}
    if task == "multiclass":
        return {"accuracy": float(sk.accuracy_score(y, pred)),
                "f1Macro": float(sk.f1_score(y, pred, average="macro"))}
    return {"mae": float(sk.mean_absolute_error(y, pred)),
            "rmse": math.sqrt(float(sk.mean_squared_error(y, pred)))}


def _window(data: dict[str, Array], i: int, rows: int) -> dict[str, Array]:
    return {k: v[i * rows:(i + 1) * rows] for k, v in data.items()}


# The workers (one process per tool) -----------------------------------------------------

def _timed(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def _regression_inputs(window: dict[str, Array]) -> tuple[Any, Array]:
    """A window as the operator holds it: a data frame of the features, the predictions."""
    import pandas as pd

    return pd.DataFrame(window["x"], columns=list(FEATURES)), window["pred"]


def _regression_estimate(estimator: Any, inputs: tuple[Any, Array]) -> dict[str, Any]:
    return dict(estimator.estimate(*inputs, wanted=METRICS["regression"]))


def _classifier_inputs(names: Array, task: str, window: dict[str, Array]
                       ) -> tuple[Array, Array]:
    """A window as the operator holds it: the probabilities, the predicted class names."""
    return (window["proba"][:, 0] if task == "binary" else window["proba"],
            names[window["pred"]])


def _classifier_estimate(estimator: Any, task: str, inputs: tuple[Array, Array]
                         ) -> dict[str, Any]:
    return dict(estimator.estimate(inputs[0], prediction=inputs[1], wanted=METRICS[task]))


def _save(path: Path, data: dict[str, Any]) -> None:
    np.savez(path, **data)


def modelmon_worker(manifest: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    import modelmon
    from modelmon.stats.estimation import fit_classifier_estimator, fit_regression_estimator

    directory, rows, repeats = Path(manifest["dir"]), manifest["window_rows"], manifest["repeats"]
    out: dict[str, Any] = {"tasks": {}, "versions": {
        "modelmon": modelmon.__version__, "numpy": np.__version__, "pandas": pd.__version__,
        "scikit-learn": __import__("sklearn").__version__,
        "python": platform.python_version()}}
    for task in manifest["tasks"]:
        scenarios: dict[str, Any] = {name: [] for name in manifest["scenarios"]}
        times: list[float] = []
        for draw in range(manifest["draws"]):
            ref = dict(np.load(directory / f"{task}.{draw}.reference.npz"))
            if task == "regression":
                frame = pd.DataFrame(ref["x"], columns=list(FEATURES))
                seconds, estimator = _timed(partial(fit_regression_estimator, frame,
                                                    ref["pred"], ref["y"]))
                one = partial(_regression_estimate, estimator)
                prepare: Any = _regression_inputs
            else:
                classes: tuple[object, ...] = (0, 1) if task == "binary" else CLASSES
                names = np.asarray(classes, dtype=object)
                proba = ref["proba"][:, 0] if task == "binary" else ref["proba"]
                seconds, estimator = _timed(partial(fit_classifier_estimator, proba,
                                                    names[ref["y"]], classes,
                                                    prediction=names[ref["pred"]]))
                one = partial(_classifier_estimate, estimator, task)
                prepare = partial(_classifier_inputs, names, task)
            if draw == 0:
                fit_s = seconds
            for scenario in manifest["scenarios"]:
                data = dict(np.load(directory / f"{task}.{draw}.{scenario}.npz"))
                # Each window's inputs are built before timing, as NannyML's data frame is.
                windows = [prepare(_window(data, i, rows))
                           for i in range(len(data["x"]) // rows)]
                one(windows[0])  # the bands of this window size, computed once per estimator
                if draw == 0:
                    runs = []
                    for _ in range(repeats):
                        seconds, estimates = _timed(lambda ws=windows, f=one: [f(w) for w in ws])
                        runs.append(seconds)
                    times.append(statistics.median(runs))
                else:
                    estimates = [one(w) for w in windows]
                scenarios[scenario] += [{m: [e.value, e.lower, e.upper] for m, e in est.items()}
                                        for est in estimates]
        out["tasks"][task] = {"fit_s": fit_s, "estimate_s": times, "windows": scenarios}
    return out


def nannyml_worker(manifest: dict[str, Any]) -> dict[str, Any]:
    import warnings

    import nannyml as nml  # type: ignore[import-not-found,unused-ignore]
    import pandas as pd

    warnings.filterwarnings("ignore")
    directory, rows, repeats = Path(manifest["dir"]), manifest["window_rows"], manifest["repeats"]
    out: dict[str, Any] = {"tasks": {}, "versions": {
        "nannyml": nml.__version__, "numpy": np.__version__, "pandas": pd.__version__,
        "scikit-learn": __import__("sklearn").__version__,
        "python": platform.python_version()}}
    for task in manifest["tasks"]:
        metrics = METRICS[task]

        def frame(data: dict[str, Array], labelled: bool, task: str = task) -> pd.DataFrame:
            df = pd.DataFrame(data["x"], columns=list(FEATURES))
            if task == "binary":
                df["proba"] = data["proba"][:, 0]
                df["pred"] = data["pred"]
            elif task == "multiclass":
                for c, name in enumerate(CLASSES):
                    df[f"proba_{name}"] = data["proba"][:, c]
                df["pred"] = np.asarray(CLASSES, dtype=object)[data["pred"]]
            else:
                df["pred"] = data["pred"]
            if labelled:
                df["y"] = (np.asarray(CLASSES, dtype=object)[data["y"]]
                           if task == "multiclass" else data["y"])
            return df

        scenarios: dict[str, Any] = {name: [] for name in manifest["scenarios"]}
        times: list[float] = []
        for draw in range(manifest["draws"]):
            ref = dict(np.load(directory / f"{task}.{draw}.reference.npz"))
            if task == "regression":
                estimator: Any = nml.DLE(feature_column_names=list(FEATURES), y_pred="pred",
                                         y_true="y", metrics=list(metrics.values()),
                                         chunk_size=rows)
            else:
                proba: Any = ("proba" if task == "binary"
                              else {name: f"proba_{name}" for name in CLASSES})
                estimator = nml.CBPE(
                    y_pred_proba=proba, y_pred="pred", y_true="y",
                    problem_type=("classification_binary" if task == "binary"
                                  else "classification_multiclass"),
                    metrics=list(metrics.values()), chunk_size=rows)
            reference = frame(ref, labelled=True)
            seconds, _ = _timed(lambda est=estimator, df=reference: est.fit(df))
            if draw == 0:
                fit_s = seconds
            for scenario in manifest["scenarios"]:
                analysis = frame(dict(np.load(directory / f"{task}.{draw}.{scenario}.npz")),
                                 False)
                runs = []
                for _ in range(repeats if draw == 0 else 1):
                    seconds, result = _timed(lambda est=estimator, df=analysis: est.estimate(df))
                    runs.append(seconds)
                if draw == 0:
                    times.append(statistics.median(runs))
                df = result.filter(period="analysis").to_df()
                for i in range(len(df)):
                    scenarios[scenario].append(
                        {ours: [float(df[(theirs, "value")].iloc[i]),
                                float(df[(theirs, "lower_confidence_boundary")].iloc[i]),
                                float(df[(theirs, "upper_confidence_boundary")].iloc[i])]
                         for ours, theirs in metrics.items()})
        out["tasks"][task] = {"fit_s": fit_s, "estimate_s": times, "windows": scenarios}
    return out


def worker(tool: str, manifest_path: Path) -> None:
    manifest = json.loads(manifest_path.read_text())
    result = modelmon_worker(manifest) if tool == "modelmon" else nannyml_worker(manifest)
    manifest_path.with_suffix(f".{tool}.json").write_text(json.dumps(result))


def run_worker(tool: str, python: Path, manifest: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "operator"), NML_DISABLE_USAGE_LOGGING="1",
               DO_NOT_TRACK="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([str(python), str(Path(__file__).resolve()), "--worker", tool,
                           str(manifest)], env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the {tool} worker failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(manifest.with_suffix(f".{tool}.json").read_text())
    return result


# Running -------------------------------------------------------------------------------

def measure(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from run import ensure_venv, wait_for_idle

    plan = QUICK if args.quick else FULL
    windows = args.windows or plan.windows
    plan = Plan(plan.reference_rows, plan.window_rows, windows, args.repeats or plan.repeats,
                args.rounds or plan.rounds, args.draws or plan.draws)
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    nannyml = None
    if not args.no_nannyml:
        nannyml = bench_python() if args.quick else ensure_venv()
        if nannyml is None:
            log("no benchmark virtualenv (make bench creates it): NannyML not run")
    truth: dict[str, dict[str, list[dict[str, float]]]] = {}
    loads: dict[str, float] = {}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="modelmon-estimation-") as tmp:
        directory = Path(tmp)
        rows = plan.window_rows * plan.windows
        for task in TASKS:
            truth[task] = {scenario: [] for scenario in SCENARIOS}
            for draw in range(plan.draws):
                ref = generate(task, "reference", plan.reference_rows, 1, SEED + draw)
                _save(directory / f"{task}.{draw}.reference.npz", ref)
                for scenario in SCENARIOS:
                    data = generate(task, scenario, rows, plan.windows, SEED + draw)
                    _save(directory / f"{task}.{draw}.{scenario}.npz",
                          {k: v for k, v in data.items() if k != "y"})
                    truth[task][scenario] += [realized(task, _window(data, i, plan.window_rows))
                                              for i in range(plan.windows)]
        common = {"dir": str(directory), "tasks": list(TASKS), "scenarios": list(SCENARIOS),
                  "window_rows": plan.window_rows, "repeats": plan.repeats}
        # The first round estimates every draw (the accuracy); the others only time draw 0.
        manifest = directory / "manifest.json"
        manifest.write_text(json.dumps({**common, "draws": plan.draws}))
        timing = directory / "timing.json"
        timing.write_text(json.dumps({**common, "draws": 1}))
        tools = [("modelmon", Path(sys.executable))]
        if nannyml is not None:
            tools.append(("nannyml", nannyml))
        # The tools take turns, round after round, so that a busy stretch of a shared
        # machine slows both; the estimates are the same every round, the times are not.
        loads["start"] = round(wait_for_idle(args.max_load, args.wait_minutes), 2)
        for round_ in range(plan.rounds):
            for tool, python in tools:
                log(f"round {round_ + 1}/{plan.rounds}, {tool} "
                    f"(load {os.getloadavg()[0]:.2f})")
                result = run_worker(tool, python, manifest if round_ == 0 else timing)
                if round_ == 0:
                    results[tool] = result
                    for task in result["tasks"].values():
                        task["fit_s"], task["estimate_s"] = [task["fit_s"]], [task["estimate_s"]]
                    continue
                for name, task in result["tasks"].items():
                    results[tool]["tasks"][name]["fit_s"].append(task["fit_s"])
                    results[tool]["tasks"][name]["estimate_s"].append(task["estimate_s"])
    log("done")
    return {
        "meta": {
            "command": " ".join(["python", "benchmarks/estimation.py",
                                 *map(shlex.quote, args.argv)]),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": round(time.monotonic() - started, 1),
            "machine": machine(), "seed": SEED, "quick": args.quick,
            "reference_rows": plan.reference_rows, "window_rows": plan.window_rows,
            "windows": plan.windows, "repeats": plan.repeats, "rounds": plan.rounds,
            "draws": plan.draws,
            "load": loads,
        },
        "truth": truth, "tools": results,
    }


# The report ----------------------------------------------------------------------------

def errors(run: dict[str, Any], tool: str, task: str, scenario: str, metric: str
           ) -> list[float] | None:
    """|estimated - realized| per window, or None when the tool did not run."""
    found = run["tools"].get(tool)
    if found is None:
        return None
    estimates = found["tasks"][task]["windows"][scenario]
    return [abs(e[metric][0] - t[metric])
            for e, t in zip(estimates, run["truth"][task][scenario], strict=True)]


def coverage(run: dict[str, Any], tool: str, task: str, scenario: str, metric: str
             ) -> float | None:
    """Share of windows whose realized value lies within the tool's band."""
    found = run["tools"].get(tool)
    if found is None:
        return None
    estimates = found["tasks"][task]["windows"][scenario]
    inside = [bool(e[metric][1] <= t[metric] <= e[metric][2])
              for e, t in zip(estimates, run["truth"][task][scenario], strict=True)]
    return sum(inside) / len(inside)


def accuracy_cells(run: dict[str, Any]) -> list[dict[str, Any]]:
    cells = []
    for task, metrics in METRICS.items():
        for scenario in SCENARIOS:
            for metric in metrics:
                ours = errors(run, "modelmon", task, scenario, metric)
                theirs = errors(run, "nannyml", task, scenario, metric)
                assert ours is not None
                cells.append({
                    "task": task, "scenario": scenario, "metric": metric,
                    "spread": draw_spread(ours, theirs, int(run["meta"]["windows"])),
                    "realized": [t[metric] for t in run["truth"][task][scenario]],
                    "modelmon": statistics.fmean(ours),
                    "nannyml": None if theirs is None else statistics.fmean(theirs),
                    "modelmon_coverage": coverage(run, "modelmon", task, scenario, metric),
                    "nannyml_coverage": coverage(run, "nannyml", task, scenario, metric)})
    return cells


def draw_spread(ours: list[float], theirs: list[float] | None, windows: int) -> float | None:
    """Two standard errors of the difference of the two tools' mean errors, from its spread
    between draws (each draw's windows share a reference and a fit, so the draws, not the
    windows, are the independent units); None with fewer than two draws."""
    if theirs is None or len(ours) < 2 * windows:
        return None
    per_draw = [statistics.fmean(ours[i:i + windows]) - statistics.fmean(theirs[i:i + windows])
                for i in range(0, len(ours), windows)]
    return 2.0 * statistics.stdev(per_draw) / math.sqrt(len(per_draw))


def steady(task: dict[str, Any]) -> float:
    """A tool's steady-state time for a task: per round the median over the scenarios (each
    already the median of its repeated runs), then the median over the rounds."""
    return float(statistics.median(statistics.median(r) for r in task["estimate_s"]))


def speed_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for task in TASKS:
        ours = run["tools"]["modelmon"]["tasks"][task]
        theirs = run["tools"].get("nannyml", {}).get("tasks", {}).get(task)
        ours_s = steady(ours)
        theirs_s = None if theirs is None else steady(theirs)
        out.append({"task": task, "modelmon_fit": statistics.median(ours["fit_s"]),
                    "modelmon": ours_s,
                    "nannyml_fit": None if theirs is None else statistics.median(theirs["fit_s"]),
                    "nannyml": theirs_s,
                    "ratio": None if theirs_s is None else theirs_s / ours_s})
    return out


def _num(x: float | None, digits: int = 5) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _diff(cell: dict[str, Any]) -> str:
    if cell["nannyml"] is None:
        return "-"
    spread = cell.get("spread")
    return f"{cell['modelmon'] - cell['nannyml']:+.1e}" + (
        "" if spread is None else f" ± {spread:.1e}")


def _secs(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


#: Mean errors closer than this (in the metric's own units) are equal: both CBPEs compute
#: the same quantities in a different order, and differ in the tenth decimal at most.
EQUAL_WITHIN = 1e-9


def at_most(ours: float, theirs: float) -> bool:
    """``ours <= theirs``, a difference below ``EQUAL_WITHIN`` counting as equal."""
    return ours <= theirs + EQUAL_WITHIN


def verdict(cell: dict[str, Any]) -> str:
    if cell["nannyml"] is None:
        return "NannyML not run"
    held = at_most(cell["modelmon"], cell["nannyml"])
    if cell["scenario"] not in JUDGED:
        return "not judged (" + ("lower" if held else "higher") + ")"
    return "✓" if held else "✗"


def goals(run: dict[str, Any]) -> dict[str, Any]:
    cells = [c for c in accuracy_cells(run)
             if c["scenario"] in JUDGED and c["nannyml"] is not None]
    speed = [r for r in speed_rows(run) if r["ratio"] is not None]
    missed = [c for c in cells if not at_most(c["modelmon"], c["nannyml"])]
    beyond = [c for c in missed if c.get("spread") is not None
              and c["modelmon"] - c["nannyml"] > c["spread"]]
    return {"accuracy_held": len(cells) - len(missed), "accuracy_cells": len(cells),
            "accuracy_missed": [
                f"{c['task']} {c['scenario']} {c['metric']} (+{c['modelmon'] - c['nannyml']:.1e}, "
                f"{(c['modelmon'] - c['nannyml']) / c['nannyml']:+.1%} of NannyML's)"
                for c in missed],
            "accuracy_beyond_noise": len(beyond),
            "speed_held": sum(r["ratio"] >= SPEED_GOAL for r in speed),
            "speed_rows": len(speed)}


def render(run: dict[str, Any]) -> str:
    meta = run["meta"]
    mach = meta["machine"]
    ours = run["tools"]["modelmon"]["versions"]
    theirs = run["tools"].get("nannyml", {}).get("versions")
    g = goals(run)
    draws = int(meta.get("draws", 1))
    lines = [
        "# Performance estimation: modelmon beside NannyML",
        "",
        "Generated by `make bench-estimation` (`python benchmarks/estimation.py`); do not edit "
        "by hand. `python benchmarks/estimation.py --from-json "
        "~/.cache/modelmon/estimation-last.json` re-renders it from the saved figures.",
        "",
        f"- command: `{meta['command']}`" + (" (quick mode: a smoke test, figures are noise)"
                                             if meta["quick"] else ""),
        f"- date: {meta['date']}, {meta['seconds']:.0f} s in all",
        f"- machine: {mach['cpu']}, nproc {mach['nproc']} of {mach['cpus']}, {mach['ram']} "
        f"RAM, {mach['arch']}, {mach['os']}; 1-minute load when measuring started: "
        f"{meta['load']['start']}",
        "- modelmon side: " + ", ".join(f"{k} {v}" for k, v in ours.items()),
        "- NannyML side (benchmark virtualenv): " + (
            ", ".join(f"{k} {v}" for k, v in theirs.items()) if theirs else "NannyML not run"),
        f"- {draws} independent draw(s) (seeds {meta['seed']} to {meta['seed'] + draws - 1}), "
        f"each a reference of {meta['reference_rows']:,} labelled rows and per scenario "
        f"{meta['windows']} windows of {meta['window_rows']:,} rows (NannyML "
        f"`chunk_size={meta['window_rows']}`, so its chunks are exactly these windows); "
        f"accuracy over all {draws * meta['windows']} windows of a scenario, times on the "
        f"first draw: each tool's process ran {meta['rounds']} times, the tools taking turns, "
        f"{meta['repeats']} timed runs per scenario in each",
        "",
        "## Summary",
        "",
    ]
    if theirs is None:
        lines += ["NannyML not run: no goal is judged.", ""]
    else:
        lines += [
            f"- Accuracy (mean absolute error of the estimate per window at most NannyML's, "
            f"concept shift excluded): {g['accuracy_held']} of {g['accuracy_cells']} "
            "task x scenario x metric cells"
            + (" — goal held." if g["accuracy_held"] == g["accuracy_cells"] else
               "; missed in: " + "; ".join(g["accuracy_missed"]) + ". Of those, "
               f"{g['accuracy_beyond_noise']} by more than two standard errors of the "
               "difference between draws."),
            f"- Speed (steady-state estimate of all windows at least {SPEED_GOAL:g}x faster "
            f"than NannyML's `estimate`): {g['speed_held']} of {g['speed_rows']} tasks"
            + (" — goal held." if g["speed_held"] == g["speed_rows"] else "."),
            "- Concept shift: neither tool can see it. Both estimate from the model's "
            "outputs (and, for regression, the features); when the label's relation to the "
            "inputs changes, those do not move, so the estimate stays near the reference's "
            "performance while the realized one falls. The table below shows both failing.",
            "",
        ]
    lines += [
        "## The data",
        "",
        "Drawn with fixed seeds, once per draw, and handed to both tools as the same "
        "files; the analysis labels are never given to either tool. Each scenario's shift "
        "grows linearly from nothing in the first window of a draw to its full size in the "
        "last. Both tools estimate only the metrics below (modelmon's `wanted`, the "
        "metrics a spec lists).",
        "",
        "- binary: four standard normal features; the label is Bernoulli with "
        "`sigmoid(1.5 x0 + x1)`; the model's score is `sigmoid(1.3 (1.5 x0 + x1) + 0.3)`, "
        "the right ranking but overconfident and biased (slightly miscalibrated); predicted "
        "positive at 0.5.",
        "- multiclass: three classes `c0, c1, c2` with true logits `W (x0, x1)`; the model's "
        "probabilities are a softmax of `1.25 W (x0, x1)` plus a small bias per class; "
        "predicted class: the most probable.",
        "- regression: `y = 2 x0 + x1 + 0.5 (x2² - 1) + noise`, noise standard deviation "
        "`0.3 + 0.8 |x0|` (heteroscedastic); the model predicts `2 x0 + x1`.",
        "",
        "| scenario | binary | multiclass | regression |",
        "|---|---|---|---|",
        "| none | - | - | - |",
        "| harmful | `x0, x1` shrink towards 0 (x0.25): rows near the boundary | the same: "
        "rows where the classes overlap | `x0` widens (x1.8) and moves +1.2: the noisy "
        "region |",
        "| harmless | +1.5 sd along the boundary `1.5 x0 + x1 = 0`, +1.5 in `x2, x3` | "
        "+2 in `x2, x3` (no class depends on them) | +1.5 in `x1` (the model gets it "
        "exactly), +2 in `x3` |",
        "| concept | the sign of `x1`'s effect on the label reverses | `x1`'s effect on "
        "`c1` and `c2` reverses | `x1`'s coefficient 1 → 2.5 |",
        "",
        "Metric names: binary `rocAuc`, `f1`, `accuracy` (NannyML `roc_auc`, `f1`, "
        "`accuracy`); multiclass `accuracy`, `f1Macro` (NannyML `accuracy`, `f1`, which is "
        "macro-averaged); regression `mae`, `rmse` (the same in NannyML). The realized "
        "metric of each window is computed with scikit-learn from the drawn labels.",
        "",
        "## Accuracy: mean absolute error of the estimate per window",
        "",
        "Lower is better, over every window of every draw. *realized* is the range of the "
        "true metric over those windows; "
        "*in band* is the share of windows whose realized value lies within the tool's "
        "band (modelmon: ± 3 sampling spreads of the reference; NannyML: its confidence "
        "boundaries, ± 3 sampling errors). Concept shift is not judged: no estimator that "
        "sees only the inputs can follow it. Mean errors closer than "
        f"{EQUAL_WITHIN:g} count as equal. *modelmon - NannyML* is the difference of the "
        "mean errors ± two standard errors of it, from its spread between draws (a draw's "
        "windows share one reference and one fit, so draws are the independent units): a "
        "difference inside that margin is as likely the luck of the draws as a real one.",
        "",
        "| task | scenario | metric | realized | modelmon MAE | NannyML MAE | "
        "modelmon - NannyML | modelmon ≤ NannyML | modelmon in band | NannyML in band |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in accuracy_cells(run):
        lines.append(
            f"| {c['task']} | {c['scenario']} | {c['metric']} | "
            f"{min(c['realized']):.3f} - {max(c['realized']):.3f} | {_num(c['modelmon'])} | "
            f"{_num(c['nannyml'])} | {_diff(c)} | {verdict(c)} | "
            f"{_share(c['modelmon_coverage'])} | "
            f"{_share(c['nannyml_coverage'])} |")
    lines += [
        "",
        "## Speed: steady state and fit",
        "",
        f"Each tool in its own process, one after the other. *estimate*: the time to "
        f"estimate all {meta['windows']} windows of a scenario (first draw) with the "
        "estimator already "
        "fitted — modelmon one `estimate` call per window on the window's data frame or "
        "arrays (built before timing, as NannyML's data frame is; the bands of the window "
        "size computed before timing, as a running monitor keeps them); NannyML one "
        "`estimate` call on the scenario's rows chunked into the same windows (for an "
        "estimator this is NannyML's `calculate`), its LightGBM on every core, modelmon's "
        "loss models on one thread. The median over the runs of a scenario, "
        "then over the scenarios, then over the rounds. *fit*: one fit on the reference per "
        "round (first draw), the median over the rounds.",
        "",
        "| task | modelmon fit | NannyML fit | modelmon estimate | NannyML estimate | "
        f"NannyML / modelmon | ≥ {SPEED_GOAL:g}x |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in speed_rows(run):
        ratio = r["ratio"]
        mark = "-" if ratio is None else ("✓" if ratio >= SPEED_GOAL else "✗")
        times = "-" if ratio is None else f"{ratio:.1f}x"
        lines.append(
            f"| {r['task']} | {_secs(r['modelmon_fit'])} | {_secs(r['nannyml_fit'])} | "
            f"{_secs(r['modelmon'])} | {_secs(r['nannyml'])} | {times} | {mark} |")
    lines += [
        "",
        "## Concept shift: what estimation cannot see",
        "",
        "Performance estimation assumes only the inputs shift: the chance of each label "
        "given the model's score (CBPE), or the expected error given the features and the "
        "prediction (DLE), stays as on the reference. Under concept shift that assumption "
        "is false, and the estimate is wrong without any sign of it: the windows' inputs "
        "and scores look like the reference's. The concept rows above show the error of "
        "both tools growing with the shift. Only labels (realized performance, "
        "`spec.performance.metrics`) reveal concept shift.",
        "",
    ]
    return "\n".join(lines)


def summary(run: dict[str, Any]) -> str:
    g = goals(run)
    if "nannyml" not in run["tools"]:
        return "estimation: NannyML not run"
    return (f"estimation: accuracy at most NannyML's in {g['accuracy_held']} of "
            f"{g['accuracy_cells']} cells; speed goal held in {g['speed_held']} of "
            f"{g['speed_rows']} tasks")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: a small reference, 3 windows of 500 rows")
    p.add_argument("--windows", type=int, help="windows per scenario (default 10)")
    p.add_argument("--repeats", type=int, help="timed runs per scenario (default 5)")
    p.add_argument("--draws", type=int,
                   help="independent draws of reference and windows for the accuracy "
                        "(default 10)")
    p.add_argument("--rounds", type=int,
                   help="times each tool's process runs, taking turns (default 3)")
    p.add_argument("--no-nannyml", action="store_true", help="modelmon only")
    p.add_argument("--max-load", type=float, default=1.0,
                   help="wait for the 1-minute load to fall below this before measuring")
    p.add_argument("--wait-minutes", type=float, default=3.0,
                   help="wait at most this long for the load")
    p.add_argument("--out", type=Path, default=REPORT, help="the markdown report")
    p.add_argument("--json", type=Path, default=cache_dir() / "estimation-last.json",
                   help="where the raw figures go")
    p.add_argument("--from-json", type=Path, help="re-render the report from saved figures")
    p.add_argument("--worker", nargs=2, metavar=("TOOL", "MANIFEST"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return 0
    if args.from_json:
        run = json.loads(args.from_json.read_text())
    else:
        run = measure(args)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(run, indent=1) + "\n")
    args.out.write_text(render(run))
    print(summary(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
