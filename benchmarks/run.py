"""modelmon against its peers: one command, one run, one report.

``python benchmarks/run.py`` (``make bench``) creates the peers' virtualenv if needed
(Evidently, NannyML and the numpy/scipy/pandas they share with modelmon, pinned in
``requirements-peers.txt``), writes the workloads once as parquet into a temporary
directory, measures every (tool, method, workload) in a fresh process (``measure.py``),
checks that the statistics agree where the methods are the same, and writes
``benchmarks/README.md``: one table per workload, the scaling, and each goal with its
figure and PASS or FAIL.

Each tool runs in the environment its users get: modelmon and the numpy bound with the
interpreter that runs this script (modelmon's own pinned dependencies, ``make install``);
scipy, Evidently and NannyML in the peers' virtualenv, whose pandas is older because
Evidently and NannyML do not support pandas 3. numpy, scipy and pyarrow are the same in
both, and the report lists each environment's versions.

``--quick`` runs small workloads once each (a smoke test; the timings mean nothing);
``--tools modelmon,bound,scipy --python current`` needs no virtualenv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import bigwindow  # noqa: E402
import scale  # noqa: E402
from peers import cache_dir, machine  # noqa: E402
from workloads import FULL, QUICK, Workload, write  # noqa: E402

REQUIREMENTS = HERE / "requirements-peers.txt"
ALL_TOOLS = ("modelmon", "bound", "scipy", "evidently", "nannyml")
#: Tools measured with modelmon's own interpreter; the others run in the peers' virtualenv.
OWN_TOOLS = ("modelmon", "bound")
PEERS = ("evidently", "nannyml")
MB = 1024 * 1024
#: A row whose runs are short keeps running until they add up to this many seconds ...
MIN_SECONDS = 2.0
#: ... or it has run this many times.
MAX_RUNS = 41

#: The operator with several replicas (``make bench`` and ``--replicas-only``).
REPLICAS_ARGS = "--replicas 3 --monitors 3000 --control-plane-gogc 400"

#: Statistics equal to scipy's within this (absolute for p-values and KS distances,
#: relative for the other statistics).
EXACT = 1e-9

#: (tool, configuration, modes) measured on every workload. The configurations name the
#: same methods across tools: ``default`` is each tool's default, ``ks`` is KS for numeric
#: and chi-square for categorical columns, ``psi`` is PSI for both, ``wasserstein`` is
#: Wasserstein for numeric and Jensen-Shannon for categorical columns.
PLAN: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("modelmon", "auto", ("cold", "steady", "check", "cold2", "steady2", "check2")),
    ("modelmon", "ks", ("cold", "steady", "cold2", "steady2")),
    ("modelmon", "psi", ("cold", "steady")),
    ("modelmon", "wasserstein", ("cold", "steady", "cold2", "steady2")),
    ("bound", "sort", ("steady",)),
    ("scipy", "ks", ("cold",)),
    ("scipy", "wasserstein", ("cold",)),
    ("evidently", "default", ("cold",)),
    ("evidently", "ks", ("cold",)),
    ("evidently", "psi", ("cold",)),
    ("evidently", "wasserstein", ("cold",)),
    ("nannyml", "default", ("cold", "steady")),
    ("nannyml", "ks", ("cold", "steady")),
    ("nannyml", "wasserstein", ("cold", "steady")),
)
#: modelmon's configuration that each peer configuration is compared with.
MODELMON_CONFIG = {"default": "auto", "auto": "auto", "ks": "ks", "psi": "psi",
                   "wasserstein": "wasserstein", "sort": "auto"}

METHODS = {
    ("modelmon", "auto"): "auto (wasserstein / jensenshannon)",
    ("modelmon", "ks"): "ks / chisquare",
    ("modelmon", "psi"): "psi / psi",
    ("modelmon", "wasserstein"): "wasserstein / jensenshannon",
    ("bound", "sort"): "np.sort / factorize+bincount per column",
    ("scipy", "ks"): "ks_2samp / chi2_contingency",
    ("scipy", "wasserstein"): "wasserstein_distance / jensenshannon",
    ("evidently", "default"): "DataDriftPreset() (wasserstein / jensenshannon)",
    ("evidently", "ks"): "ks / chisquare",
    ("evidently", "psi"): "psi / psi",
    ("evidently", "wasserstein"): "wasserstein / jensenshannon",
    ("nannyml", "default"): "defaults (jensen_shannon / jensen_shannon)",
    ("nannyml", "ks"): "kolmogorov_smirnov / chi2",
    ("nannyml", "wasserstein"): "wasserstein / jensen_shannon",
}
MODES = {"cold": "cold", "steady": "steady", "check": "steady + quality",
         "cold2": "cold, 2 threads", "steady2": "steady, 2 threads",
         "check2": "steady + quality, 2 threads", "window": "read + steady + quality",
         "columns": "read and score column by column"}


@dataclass
class Result:
    tool: str
    config: str
    mode: str
    workload: Workload
    times: list[float]
    warmup: float
    rss: dict[str, Any]
    columns: dict[str, dict[str, Any]]
    versions: dict[str, str]
    notes: list[str] = field(default_factory=list)
    load: float | None = None
    """The 1-minute load average when the row's process started."""

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def peak_mb(self) -> float:
        return float(self.rss["peak"]) / MB

    @property
    def work_mb(self) -> float:
        """Peak RSS of a run above the process with the data read (and steady state
        fitted) at its start."""
        return float(self.rss.get("work", self.rss["peak"] - self.rss["ready"])) / MB


# The peers' virtualenv -----------------------------------------------------------------

def merged_versions(results: Iterable[Result]) -> dict[str, str]:
    """Each package's version; where the environments differ, each with its tools."""
    seen: dict[str, dict[str, set[str]]] = {}
    for r in results:
        for package, version in r.versions.items():
            seen.setdefault(package, {}).setdefault(version, set()).add(r.tool)
    out = {}
    for package, by_version in seen.items():
        if len(by_version) == 1:
            out[package] = next(iter(by_version))
        else:
            out[package] = " / ".join(
                f"{v} ({', '.join(sorted(tools))})" for v, tools in sorted(by_version.items()))
    return out


def ensure_venv() -> Path:
    """The benchmark virtualenv's interpreter, created or updated from the pins."""
    venv = cache_dir() / "bench-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    print(f"installing the peers into {venv} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest)
    return python


# Measuring -----------------------------------------------------------------------------

def wait_for_idle(max_load: float, minutes: float) -> float:
    """Poll the 1-minute load average until it is below ``max_load`` (at most
    ``minutes``); returns the load when measuring starts."""
    deadline = time.monotonic() + minutes * 60
    load = os.getloadavg()[0]
    while load >= max_load and time.monotonic() < deadline:
        print(f"load {load:.2f} >= {max_load}: waiting", file=sys.stderr, flush=True)
        time.sleep(20)
        load = os.getloadavg()[0]
    return load


def run_measure(python: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``measure.py`` in a fresh process and return what it printed."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "operator"), NML_DISABLE_USAGE_LOGGING="1",
               DO_NOT_TRACK="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([python, str(HERE / "measure.py"), json.dumps(spec)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"measure.py {spec} failed:\n{proc.stderr}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def measure(python: str, tool: str, config: str, mode: str, w: Workload, *, data_dir: Path,
            repeats: int, long_run: float, min_seconds: float = 0.0,
            max_runs: int = 0) -> Result:
    spec = {"tool": tool, "config": config, "mode": mode, "data_dir": str(data_dir),
            "workload": [w.key, w.numeric, w.categorical, w.rows], "repeats": repeats,
            "long_run_seconds": long_run, "min_seconds": min_seconds, "max_runs": max_runs,
            "profile": str(data_dir / f"{w.key}-profile.pickle")}
    if mode in ("window", "columns"):  # fit and pickle the profile in another process first
        fitted = run_measure(python, dict(spec, mode="fit"))
    load = os.getloadavg()[0]
    out = run_measure(python, spec)
    result = Result(tool, config, mode, w, out["times"], out["warmup"], out["rss"],
                    out["columns"], out["versions"], load=load)
    if mode in ("window", "columns"):
        result.rss["profile_bytes"] = fitted["profile_bytes"]
    return result


Row = tuple[str, str, str]


def _compared(row: Row, config: str, mode: str) -> bool:
    """Whether a peer's (or the bound's) row is compared with modelmon's ``config`` in
    ``mode``."""
    tool, peer_config, peer_mode = row
    if tool == "bound":
        return (config, mode) == ("auto", "check")
    return MODELMON_CONFIG[peer_config] == config and peer_mode == mode


def schedule(rows: Sequence[Row]) -> list[Row]:
    """The rows of one workload in the order they run: each modelmon row followed at once
    by the rows compared with it, so that a noisy stretch of the machine slows both sides
    of a ratio rather than one."""
    others = [r for r in rows if r[0] != "modelmon"]
    out: list[Row] = []
    for row in rows:
        if row[0] == "modelmon":
            out.append(row)
            out += [o for o in others if o not in out and _compared(o, row[1], row[2])]
    return out + [o for o in others if o not in out]


def plan_index(r: Result) -> int:
    """Where a result's row stands in ``PLAN`` (the report's order)."""
    rows = [(t, c, m) for t, c, modes in PLAN for m in modes]
    key = (r.tool, r.config, r.mode)
    return rows.index(key) if key in rows else len(rows)


# Agreement -----------------------------------------------------------------------------

def max_diff(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]],
             names: Iterable[str], key: str, relative: bool = False) -> float | None:
    """The largest difference of ``key`` between two results over ``names``."""
    worst: float | None = None
    for name in names:
        x, y = a.get(name, {}).get(key), b.get(name, {}).get(key)
        if x is None or y is None:
            continue
        d = abs(float(x) - float(y))
        if relative:
            d /= max(abs(float(y)), 1e-300)
        worst = d if worst is None else max(worst, d)
    return worst


@dataclass(frozen=True)
class Agreement:
    what: str
    value: float | None
    exact_required: bool = False

    @property
    def ok(self) -> bool:
        return self.value is not None and self.value <= EXACT

    def text(self) -> str:
        v = "n/a" if self.value is None else f"{self.value:.1e}"
        return f"{self.what} {v}"


def agreements(r: Result, by: dict[tuple[str, str, str, str], Result]) -> list[Agreement]:
    """How far this row's statistics are from the reference implementation's."""
    w = r.workload
    num, cat = w.numeric_names, w.categorical_names
    key = w.key

    def get(tool: str, config: str, mode: str = "cold") -> Result | None:
        return by.get((key, tool, config, mode))

    out: list[Agreement] = []
    mm = get("modelmon", MODELMON_CONFIG.get(r.config, r.config))
    sp = get("scipy", "ks" if r.config == "ks" else "wasserstein")
    if r.tool == "modelmon" and r.mode == "cold" and sp is not None:
        if r.config == "ks":
            out += [Agreement("KS D vs scipy", max_diff(r.columns, sp.columns, num, "stat"), True),
                    Agreement("KS p", max_diff(r.columns, sp.columns, num, "p"), True)]
            if cat:
                out += [Agreement("chi2 rel", max_diff(r.columns, sp.columns, cat, "stat",
                                                       relative=True), True),
                        Agreement("chi2 p", max_diff(r.columns, sp.columns, cat, "p"), True)]
        elif r.config == "wasserstein":
            out.append(Agreement("W1 rel vs scipy", max_diff(r.columns, sp.columns, num,
                                                             "stat", relative=True), True))
            if cat:
                out.append(Agreement("JS", max_diff(r.columns, sp.columns, cat, "stat"), True))
    if r.tool == "evidently" and mm is not None:
        if r.config in ("default", "wasserstein"):
            out.append(Agreement("W1 rel vs modelmon",
                                 max_diff(r.columns, mm.columns, num, "stat", relative=True)))
            if cat:
                out.append(Agreement("JS", max_diff(r.columns, mm.columns, cat, "stat")))
        elif r.config == "ks":
            out.append(Agreement("KS p vs modelmon", max_diff(r.columns, mm.columns, num, "p")))
            if cat:
                out.append(Agreement("chi2 p (goodness of fit)",
                                     max_diff(r.columns, mm.columns, cat, "p")))
        elif r.config == "psi":
            out.append(Agreement("PSI vs modelmon (sturges bins)",
                                 max_diff(r.columns, mm.columns, num, "stat")))
            if cat:
                out.append(Agreement("PSI cat", max_diff(r.columns, mm.columns, cat, "stat")))
    if r.tool == "nannyml" and r.mode == "cold":
        if r.config == "ks" and sp is not None:
            out.append(Agreement("KS D vs scipy (binned)",
                                 max_diff(r.columns, sp.columns, num, "stat")))
            if cat:
                out.append(Agreement("chi2 rel", max_diff(r.columns, sp.columns, cat, "stat",
                                                          relative=True)))
        elif r.config == "wasserstein" and sp is not None:
            out.append(Agreement("W1 rel vs scipy (binned)", _nannyml_w1(r, sp, num)))
            if cat:
                out.append(Agreement("JS", max_diff(r.columns, sp.columns, cat, "stat")))
        elif r.config == "default" and mm is not None and cat:
            out.append(Agreement("JS cat vs modelmon", max_diff(r.columns, mm.columns, cat,
                                                                "stat")))
    return out


def _nannyml_w1(r: Result, sp: Result, names: Sequence[str]) -> float | None:
    """NannyML reports Wasserstein in the data's units: compare with scipy's raw value."""
    raw = {n: {"stat": c.get("raw")} for n, c in sp.columns.items()}
    return max_diff(r.columns, raw, names, "stat", relative=True)


def flags(r: Result) -> str:
    """Columns flagged as drifted: shifted ones caught / unshifted ones flagged."""
    w = r.workload
    if not r.columns or all("drift" not in c for c in r.columns.values()):
        return ""
    shifted = [n for n in w.columns if w.shifted(n)]
    steady = [n for n in w.columns if not w.shifted(n)]
    hit = sum(bool(r.columns.get(n, {}).get("drift")) for n in shifted)
    false = sum(bool(r.columns.get(n, {}).get("drift")) for n in steady)
    return f"{hit}/{len(shifted)} shifted, {false}/{len(steady)} unshifted"


# Report --------------------------------------------------------------------------------


def fmt_s(x: float) -> str:
    if x >= 10:
        return f"{x:.1f}"
    if x >= 0.1:
        return f"{x:.3f}"
    return f"{x:.4f}"


def ratio_text(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}x"


@dataclass
class Goal:
    name: str
    target: str
    figure: str
    passed: bool
    why: str = ""
    #: Measured and shown beside the goals, but not one of them (see ``SHOWN``).
    shown: bool = False

    @property
    def verdict(self) -> str:
        if self.shown:
            return "yes" if self.passed else "no"
        return "PASS" if self.passed else "FAIL"


#: Why the steady-state comparison with NannyML is shown but is not a goal.
SHOWN = (
    "Shown beside the goals, not among them. The goals against the peers time a whole "
    "check (cold: each tool fits its reference and scores the window); for the "
    "steady-state check (profile already fitted) the issue's goal is the numpy bound "
    "above. NannyML's fitted calculator runs in one thread and bins each column on edges "
    "fitted beforehand, while an exact statistic must at least sort each current column: "
    "the last figure of each row is how far the bound, which does nothing but that, leads "
    "NannyML's fitted defaults, the most any exact steady-state check could lead them by "
    "on this machine.")


class Report:
    def __init__(self, results: list[Result], workloads: Sequence[Workload]) -> None:
        self.results = results
        self.workloads = workloads
        self.by = {(r.workload.key, r.tool, r.config, r.mode): r for r in results}

    def get(self, key: str, tool: str, config: str, mode: str) -> Result | None:
        return self.by.get((key, tool, config, mode))

    def ratio(self, r: Result, threads: int = 1) -> float | None:
        """How many times faster modelmon (with ``threads``) is than this row, for the same
        methods and mode; for the bound, how many times slower modelmon's steady-state
        check (drift and data quality) is."""
        suffix = "2" if threads == 2 else ""
        if r.tool == "modelmon":
            return None
        if r.tool == "bound":
            mm = self.get(r.workload.key, "modelmon", "auto", "check" + suffix)
            return None if mm is None else mm.median / r.median
        mode = ("steady" if r.mode == "steady" else "cold") + suffix
        mm = self.get(r.workload.key, "modelmon", MODELMON_CONFIG[r.config], mode)
        return None if mm is None else r.median / mm.median

    def ratio_cell(self, r: Result) -> str:
        one, two = self.ratio(r), self.ratio(r, threads=2)
        if one is None:
            return ""
        if r.tool == "bound":
            return f"check/bound {one:.2f}" + ("" if two is None else f" ({two:.2f})")
        return f"{one:.1f}x" + ("" if two is None else f" ({two:.1f}x)")

    def table(self, w: Workload) -> list[str]:
        lines = [
            f"### {w.title}",
            "",
            f"Raw size of the current window: {w.current_bytes / MB:.0f} MiB.",
            "",
            "| tool | methods (numeric / categorical) | mode | wall median (s) | runs "
            "| load | peak RSS (MiB) | above data (MiB) | modelmon faster by (2 threads) "
            "| drift flagged | agreement (max difference) |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for r in sorted((r for r in self.results if r.workload == w), key=plan_index):
            agree = "; ".join(a.text() for a in agreements(r, self.by))
            load = "" if r.load is None else f"{r.load:.2f}"
            lines.append(
                f"| {r.tool} | {METHODS[(r.tool, r.config)]} | {MODES[r.mode]} "
                f"| {fmt_s(r.median)} | {len(r.times)} | {load} | {r.peak_mb:.0f} "
                f"| {r.work_mb:.0f} | {self.ratio_cell(r)} | {flags(r)} | {agree} |")
        return [*lines, ""]

    def scaling(self) -> tuple[list[str], dict[str, float]]:
        """Per-value cost of (b) and (c) relative to (a), for modelmon's rows."""
        keys = {w.key: w for w in self.workloads}
        worst: dict[str, float] = {}
        if not {"a", "b", "c"} <= keys.keys():
            return [], worst
        lines = ["| modelmon | (a) s | (b) s | (b)/(a) per value | (c) s "
                 "| (c)/(a) per value |", "|---|---:|---:|---:|---:|---:|"]
        a_cells = keys["a"].rows * keys["a"].numeric
        for config, mode in (("auto", "cold"), ("auto", "steady"), ("auto", "check"),
                             ("ks", "cold"), ("ks", "steady")):
            ra, rb, rc = (self.get(k, "modelmon", config, mode) for k in "abc")
            if ra is None or rb is None or rc is None:
                continue
            pb = rb.median / ra.median / (keys["b"].rows * keys["b"].numeric / a_cells)
            pc = rc.median / ra.median / (keys["c"].rows * keys["c"].numeric / a_cells)
            worst[f"{config} {mode}"] = max(pb, pc)
            lines.append(f"| {config} {MODES[mode]} | {fmt_s(ra.median)} | {fmt_s(rb.median)} "
                         f"| {pb:.2f} | {fmt_s(rc.median)} | {pc:.2f} |")
        return lines, worst

    def bound_over_nannyml(self) -> str:
        """How many times faster the numpy bound is than NannyML's fitted defaults, at
        worst over the workloads (a clause for a shown row's figure)."""
        worst: list[tuple[float, str]] = []
        for w in self.workloads:
            b = self.get(w.key, "bound", "sort", "steady")
            nm = self.get(w.key, "nannyml", "default", "steady")
            if b is not None and nm is not None:
                worst.append((nm.median / b.median, w.key))
        if not worst:
            return ""
        x, key = min(worst)
        return f"; the bound itself is {x:.1f}x faster than NannyML's fitted defaults on ({key})"

    def goals(self, window: Sequence[Result]) -> list[Goal]:
        goals: list[Goal] = []
        keys = [w.key for w in self.workloads]

        def ratios(tool: str, configs: Iterable[str], modes: Iterable[str], threads: int = 1
                   ) -> list[tuple[float, str]]:
            out = []
            for k in keys:
                for c in configs:
                    for m in modes:
                        r = self.get(k, tool, c, m)
                        x = None if r is None else self.ratio(r, threads)
                        if x is not None:
                            out.append((x, f"({k}) {c} {m}"))
            return out

        ev = ratios("evidently", ["default"], ["cold"])
        if ev:
            x, where = min(ev)
            goals.append(Goal("faster than Evidently's default preset, every workload: "
                              "Evidently's `Report([DataDriftPreset()]).run` against "
                              "modelmon's `fit_reference` + `score_drift` (auto), 1 thread",
                              ">= 30x", f"{x:.0f}x at worst, {where}", x >= 30))
        compared = {"cold": "construct, `fit`, `calculate` against modelmon's `fit_reference` "
                            "+ `score_drift`",
                    "steady": "`calculate` on a fitted calculator against modelmon's "
                              "`score_drift` on a fitted profile"}
        bound_clause = self.bound_over_nannyml()
        for mode, threads in (("cold", 1), ("steady", 1), ("steady", 2)):
            nm = ratios("nannyml", ["default", "ks", "wasserstein"], [mode], threads)
            if nm:
                x, where = min(nm)
                shown = mode == "steady"
                figure = f"{x:.1f}x at worst, {where}" + (bound_clause if shown else "")
                goals.append(Goal(
                    f"faster than NannyML's univariate drift calculator, every workload and "
                    f"method ({mode}: NannyML's {compared[mode]}; its defaults against auto, "
                    "its binned kolmogorov_smirnov without p-value against exact ks with "
                    "p-value, wasserstein against wasserstein), modelmon with "
                    f"{threads} " + ("thread" if threads == 1 else "threads"),
                    ">= 3x", figure, x >= 3, shown=shown))
        exact: list[tuple[float, str]] = []
        for r in self.results:
            for a in agreements(r, self.by):
                if a.exact_required and a.value is not None:
                    exact.append((a.value, f"({r.workload.key}) {a.what}"))
        if exact:
            x, where = max(exact)
            goals.append(Goal("statistics equal scipy's (KS D and p, chi-square, Wasserstein, "
                              "JS); KS exact, never binned", f"<= {EXACT:g}",
                              f"{x:.1e} at worst, {where}", x <= EXACT))
        for mode, what in (("cold", "cold (fit + score)"), ("steady", "steady (score)")):
            mem: list[tuple[float, str]] = []
            for k in keys:
                for config in ("default", "ks", "wasserstein", "psi"):
                    peers = [peer for p in PEERS
                             if (peer := self.get(k, p, config, mode)) is not None]
                    mm = self.get(k, "modelmon", MODELMON_CONFIG[config], mode)
                    if peers and mm is not None:
                        smaller = min(peers, key=lambda peer: peer.work_mb)
                        mem.append((mm.work_mb / max(smaller.work_mb, 1e-9),
                                    f"({k}) {config}: {mm.work_mb:.0f} MiB vs {smaller.tool} "
                                    f"{smaller.work_mb:.0f} MiB"))
            if mem:
                x, where = max(mem)
                goals.append(Goal(f"peak memory of a {what} check above the loaded data, as "
                                  "a share of the smaller peer's (Evidently or NannyML, same "
                                  "methods and mode; modelmon cold fits the reference frame "
                                  "it is handed, `consume=True`)", "<= 0.5",
                                  f"{x:.2f} at worst, {where}", x <= 0.5))
        bound: list[tuple[float, str]] = []
        for k in keys:
            b = self.get(k, "bound", "sort", "steady")
            one = None if b is None else self.ratio(b)
            if b is not None and one is not None:
                two = self.ratio(b, threads=2)
                bound.append((one, f"({k})" + ("" if two is None else
                                               f"; {two:.2f}x with 2 threads")))
        if bound:
            x, where = max(bound)
            goals.append(Goal("steady-state check (`score_window`: auto drift + data "
                              "quality, 1 thread) over the numpy bound (one copy and sort "
                              "per numeric column, factorize + bincount per categorical "
                              "one)", "<= 2x", f"{x:.2f}x at worst, {where}", x <= 2))
        _, worst = self.scaling()
        if worst:
            name, x = max(worst.items(), key=lambda kv: kv[1])
            goals.append(Goal("linear in rows and columns: cost per value of (b) and (c) "
                              "over (a)", "<= 1.5", f"{x:.2f} at worst, {name}", x <= 1.5))
        by_mode = {r.mode: r for r in window}
        if "window" in by_mode:
            r = by_mode["window"]
            w = r.workload
            above = (r.rss["peak"] - r.rss["ready"]) / w.current_bytes
            cols = by_mode.get("columns")
            also = "" if cols is None else (
                "; read and scored one column at a time: "
                f"{(cols.rss['peak'] - cols.rss['ready']) / w.current_bytes:.2f}")
            goals.append(Goal(
                f"({w.key}) steady-state check reading its parquet window as `modelmon check` "
                "does: RSS above the interpreter holding its fitted profile, in raw current "
                "windows", "< 3", f"{above:.2f} ({(r.rss['peak'] - r.rss['ready']) / MB:.0f} "
                f"MiB for a {w.current_bytes / MB:.0f} MiB window){also}", above < 3))
        return goals

    def render(self, *, machine_info: dict[str, str], versions: dict[str, str],
               loads: tuple[float, float], started: datetime, quick: bool,
               repeats: int, window: Sequence[Result],
               scale_run: dict[str, Any] | None = None,
               replicas_run: dict[str, Any] | None = None,
               pvalues: Sequence[dict[str, Any]] = ()) -> str:
        goals = self.goals(window)
        scaling, _ = self.scaling()
        lines = [
            "# Benchmarks",
            "",
            "modelmon's check engine against the libraries users would otherwise pick, "
            "measured in the same run on the same data. Generated by `make bench` "
            "(`python benchmarks/run.py`); do not edit by hand.",
            "",
            "Run it: `make bench` (about 45 minutes on 2 cores; the first run also "
            "installs Evidently and NannyML into a virtualenv under "
            "`${MODELMON_CACHE:-~/.cache/modelmon}/bench-venv`). Smoke test, modelmon and "
            "scipy only, timings meaningless: `python benchmarks/run.py --quick --tools "
            "modelmon,bound,scipy --python current` (`tests/bench/test_bench_smoke.py`). "
            "`python benchmarks/run.py --from-json ~/.cache/modelmon/bench-last.json` "
            "rewrites this file from the last run's saved figures; `--scale-only` reruns "
            "just the operator at scale into them, `--replicas-only` (`make bench-replicas`) "
            "just the operator with several replicas.",
            "",
            "Calibration of the drift verdicts, a separate report: `make calibration` "
            "(`benchmarks/calibration.py`) measures how often each drift test and `auto` "
            "flag without drift (continuous, heavy-tailed, discrete and categorical "
            "columns), their power on mean, scale and category changes beside Evidently's "
            "defaults on the same data, and the effect floor from 1,000 to 1,000,000 rows a "
            "side; see [CALIBRATION.md](CALIBRATION.md).",
            "",
            "Performance estimation without labels, a separate report: `make "
            "bench-estimation` (`benchmarks/estimation.py`) sets modelmon's CBPE and DLE "
            "beside NannyML's on generated data with known truth (no shift, covariate "
            "shift that does and does not hurt, concept shift that no estimator can see): "
            "the error of the estimate per window, band coverage, and the time to "
            "estimate; see [ESTIMATION.md](ESTIMATION.md).",
            "",
            "## Goals",
            "",
            "| goal | target | measured | result |",
            "|---|---|---|---|",
        ]
        lines += [f"| {g.name} | {g.target} | {g.figure} | {g.verdict} |"
                  for g in goals if not g.shown]
        shown = [g for g in goals if g.shown]
        if shown:
            lines += ["", SHOWN, "", "| shown beside the goals | mark | measured | reached |",
                      "|---|---|---|---|"]
            lines += [f"| {g.name} | {g.target} | {g.figure} | {g.verdict} |" for g in shown]
        lines += [
            "",
            "## Machine",
            "",
            f"- date: {started:%Y-%m-%d %H:%M} UTC"
            + (" (quick mode: small workloads, one run: the timings mean nothing)"
               if quick else ""),
            f"- CPU: {machine_info['cpu']}, {machine_info['cpus']} cores; RAM "
            f"{machine_info['ram']}; {machine_info['os']}",
            f"- 1-minute load average: {loads[0]:.2f} at the start, {loads[1]:.2f} at the end",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
            "",
            "## Results",
            "",
        ]
        for w in self.workloads:
            lines += self.table(w)
        if scaling:
            lines += ["### Scaling", "",
                      "Wall time per value (rows x columns) of (b) = 5x the columns and "
                      "(c) = 10x the rows, relative to (a); 1.00 is linear.", "",
                      *scaling, ""]
        by_mode = {r.mode: r for r in window}
        if window:
            first = window[0]
            rss = first.rss
            lines += [
                f"### Memory of a steady-state check on ({first.workload.key})", "",
                "A fresh process imports modelmon and loads the fitted reference profile "
                f"(pickled by another process): {rss['ready'] / MB:.0f} MiB, of which the "
                f"profile's arrays are {rss['profile_bytes'] / MB:.0f} MiB (the sorted "
                "reference values that exact KS and Wasserstein need). The check then reads "
                "the current window of "
                f"{first.workload.current_bytes / MB:.0f} MiB from parquet and runs "
                "`score_window` (drift and data quality), once per way of reading:", "",
                "| reading | peak RSS (MiB) | above the profile (MiB) | in current windows "
                "| wall (s) |", "|---|---:|---:|---:|---:|"]
            labels = {"window": "whole window, as `modelmon check` reads it (the `url` "
                                "source's `read_parquet`, column by column into one frame), "
                                "then `score_window(profile, frame)`",
                      "columns": "one column at a time: `score_window(profile, "
                                 "ParquetColumns(path))`"}
            for mode in ("window", "columns"):
                if mode in by_mode:
                    r = by_mode[mode]
                    above = r.rss["peak"] - r.rss["ready"]
                    lines.append(f"| {labels[mode]} | {r.rss['peak'] / MB:.0f} "
                                 f"| {above / MB:.0f} | {above / r.workload.current_bytes:.2f} "
                                 f"| {fmt_s(r.median)} |")
            lines.append("")
        lines += pvalue_section(pvalues)
        if scale_run is not None:
            lines += scale.section(scale_run)
        if replicas_run is not None:
            lines += scale.replicas_section(replicas_run)
        big = None if quick else bigwindow.last_run()
        if big is not None:
            lines += bigwindow.section(big)
        lines += [
            "## What is measured",
            "",
            f"- Each row runs in a fresh process: one untimed warm-up run, then at least "
            f"{repeats} timed runs, and more while they add up to less than {MIN_SECONDS:g} s "
            f"(at most {MAX_RUNS}; a warm-up longer than 20 s counts as the first of them; "
            "the `runs` column says how many); the wall time is their median. The rows of a "
            "workload run interleaved: each modelmon row is followed at once by the rows compared "
            "with it, so a noisy stretch slows both sides of a ratio; **load** is the "
            "1-minute load average when the row started.",
            "- A run covers the statistics only. Both windows are read from the same parquet "
            "files before the clock starts (`pyarrow.parquet.read_table(path).to_pandas()`), "
            "and every tool gets the same data as pandas frames.",
            "- Each tool runs in the environment its users get: modelmon and the bound with "
            "modelmon's pinned dependencies; scipy, Evidently and NannyML in a virtualenv "
            "whose pandas is older, because Evidently and NannyML do not support pandas 3 "
            "(the versions line above names each environment's pandas; numpy, scipy and "
            "pyarrow are the same in both). Text columns are arrow-backed strings under "
            "pandas 3 and Python objects under pandas 2, so modelmon counts categories "
            "faster here than it would in the peers' environment.",
            "- modelmon **cold**: `fit_reference` + `score_drift` (what a check costs when the "
            "reference profile is not cached), the reference frame handed over as `modelmon "
            "check` hands over the frame it loaded (`consume=True`: its columns are sorted "
            "in place where the frame alone holds them); each cold run gets a frame read "
            "afresh before the clock starts. **steady**: `score_drift` with the profile "
            "fitted beforehand (the reference frame is then dropped). **steady + quality**: "
            "`score_window`, drift and data quality in one pass over the columns, the "
            "statistics of a full check. **2 threads**: the same with `workers=2` (columns "
            "scored two at a time); every other row, and every goal unless it says so, is "
            "one thread.",
            "- Evidently: `Dataset.from_pandas` for both windows with an explicit "
            "`DataDefinition`, then `Report([DataDriftPreset(...)]).run(current, reference)` "
            "(rendering the snapshot is not timed).",
            "- NannyML: `UnivariateDriftCalculator(..., chunk_number=1)`: the whole window as "
            "one chunk, as modelmon scores it (its default of 10 chunks would compute each "
            "method ten times on each side). **cold**: construct, `fit(reference)`, "
            "`calculate(current)`; **steady**: `calculate(current)` on a fitted calculator. "
            "With one reference chunk its thresholds are undefined, so no drift flags.",
            "- scipy: one call per column on the frame's numpy arrays (`ks_2samp`, "
            "`wasserstein_distance` / `np.std(reference)`, `chi2_contingency(correction=False)` "
            "and `jensenshannon` on `value_counts`).",
            "- numpy bound: what any exact steady-state check must at least do, in one "
            "thread: copy each numeric current column into one reused buffer and sort it in "
            "place, `pd.factorize` + `np.bincount` each categorical one. Its ratio column is "
            "modelmon's steady + quality time over it (in brackets: with 2 threads).",
            "- Peak RSS is the process's high-water mark (`VmHWM`) during the runs, reset "
            "just before each; **above data** is the largest peak of a run above the RSS "
            "with the interpreter, the imports, the frames in memory and, in steady mode, "
            "the fitted state (for modelmon's cold runs, the RSS after the fresh read): "
            "the memory the statistics themselves take.",
            "- **modelmon faster by**: the row's wall time over modelmon's for the same "
            "methods and mode (`default` rows against modelmon's `auto`; cold against cold, "
            "steady against steady); in brackets, against modelmon with 2 threads.",
            "- **drift flagged**: of the columns shifted in the current window, how many the "
            "row flags; of the unshifted ones, how many it flags (false alarms). Evidently's "
            "`chisquare` is a goodness-of-fit test that treats the reference's proportions "
            "as exact, which flags unshifted categorical columns at this size; modelmon's "
            "`chisquare` is the test of homogeneity (`chi2_contingency`).",
            "- **agreement**: the largest difference over the columns from the reference "
            "implementation (scipy where it has the method, else modelmon): absolute for "
            "p-values, KS distances, JS and PSI, relative for Wasserstein and chi-square "
            "statistics. NannyML bins its KS and Wasserstein above 10,000 rows (10,000 "
            "bins); Evidently's numeric PSI uses Sturges bins over both windows, modelmon's "
            "the reference's deciles, so those rows differ by design.",
            "- Workloads: `benchmarks/workloads.py` (seeded; five numeric shapes, every "
            "fourth column rounded so values tie; categorical columns with 5 to 50 levels; "
            "every odd column shifted in the current window).",
            "",
        ]
        return "\n".join(lines)


# Main ----------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true",
                   help="small workloads, one run each: a smoke test")
    p.add_argument("--tools", default=",".join(ALL_TOOLS),
                   help=f"comma-separated subset of {','.join(ALL_TOOLS)}")
    p.add_argument("--workloads", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    p.add_argument("--configs", default=None,
                   help="only these configurations (auto,default,ks,psi,wasserstein,sort)")
    p.add_argument("--modes", default=None, help="only these modes (cold,steady,check)")
    p.add_argument("--no-window", action="store_true",
                   help="skip the memory measurement of a check that reads its window")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs after the warm-up (default 3, quick 1)")
    p.add_argument("--python", default=None,
                   help="interpreter for the measurements: 'current', a path, or (default) "
                        "the peers' virtualenv, created on first use")
    p.add_argument("--out", type=Path, default=None,
                   help="report path (default benchmarks/README.md; quick mode: none)")
    p.add_argument("--json", type=Path, default=None,
                   help="write the raw results here (default: bench-last.json in the cache "
                        "directory; quick mode: nowhere)")
    p.add_argument("--from-json", type=Path, default=None,
                   help="write the report of a saved run instead of measuring")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where to write the workloads (default: a temporary directory)")
    p.add_argument("--max-load", type=float, default=0.5,
                   help="wait until the 1-minute load average is below this (full mode)")
    p.add_argument("--wait-minutes", type=float, default=20.0)
    p.add_argument("--no-scale", action="store_true",
                   help="skip the operator at scale (benchmarks/scale.py, about 10 minutes "
                        "against a control plane of its own)")
    p.add_argument("--scale-only", action="store_true",
                   help="run only the operator at scale and put it into the last saved run "
                        "(--from-json, default bench-last.json in the cache directory)")
    p.add_argument("--scale-args", default="",
                   help="extra arguments for benchmarks/scale.py, e.g. '--monitors 200'")
    p.add_argument("--no-replicas", action="store_true",
                   help="skip the operator with several replicas (benchmarks/scale.py "
                        f"{REPLICAS_ARGS}, about 15 minutes against a control plane of its "
                        "own)")
    p.add_argument("--replicas-only", action="store_true",
                   help="run only the operator with several replicas and put it into the "
                        "last saved run (as --scale-only), or, with no saved run, into its "
                        "section of the report as it stands")
    p.add_argument("--replicas-args", default="",
                   help="extra arguments for that run, e.g. '--monitors 300'")
    p.add_argument("--replicas-json", type=Path, default=None,
                   help="with --replicas-only: take that run's result from this file "
                        "(scale.py --json) instead of running it")
    return p.parse_args(argv)


def run_pvalues(python: str) -> list[dict[str, Any]]:
    """The KS p-value rows (``measure.py``'s ``pvalues`` mode) in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "operator"), PYTHONWARNINGS="ignore")
    proc = subprocess.run([python, str(HERE / "measure.py"), json.dumps({"mode": "pvalues"})],
                          capture_output=True, text=True, env=env, check=True)
    rows: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return rows


def pvalue_section(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The report's table of KS p-values for mildly drifted columns."""
    if not rows:
        return []
    lines = [
        "### KS p-values of mildly drifted columns",
        "",
        "The workloads' shifted columns drift strongly (p-values below 1e-300, where every "
        "tool takes a shortcut) and the others not at all. Between the two, where p falls "
        "from about 0.05 to 1e-14 and drift is decided, scipy's `ks_2samp` computes the "
        "asymptotic p-value with `kstwo.sf`, which sums about N = n/2 terms of the exact "
        "Smirnov series per column; modelmon sums the same series on 256 of its terms. "
        "Best of several runs, one column, `kstwo.sf(D, N)` against modelmon's "
        "`ks_asymptotic_pvalue(D, n, n)`:",
        "",
        "| rows per side | D | p-value (scipy) | difference | scipy (ms) | modelmon (ms) | "
        "modelmon faster by |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['rows']:,} | {r['d']:.5f} | {r['p']:.3e} | "
            f"{abs(r['ours_p'] - r['p']):.1e} | {r['scipy_s'] * 1000:.1f} | "
            f"{r['ours_s'] * 1000:.2f} | {r['scipy_s'] / r['ours_s']:.0f}x |")
    lines.append("")
    return lines


def splice(report_text: str, section: Sequence[str]) -> str:
    """The report with its section of the replicas run replaced by ``section`` (or put
    before "What is measured" when it has none)."""
    heading = section[0]
    lines = report_text.splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
    else:
        start = end = next((i for i, line in enumerate(lines)
                            if line == "## What is measured"), len(lines))
    return "\n".join([*lines[:start], *section, *lines[end:]]) + "\n"


def replicas_only(args: argparse.Namespace) -> int:
    """The replicas run alone: into the saved run and its report when there is one, else
    into the report's own section (the rest of the report stays as it is)."""
    result: dict[str, Any] = (json.loads(args.replicas_json.read_text())
                              if args.replicas_json is not None
                              else run_scale(f"{REPLICAS_ARGS} {args.replicas_args}"))
    last = cache_dir() / "replicas-last.json"
    last.parent.mkdir(parents=True, exist_ok=True)
    last.write_text(json.dumps(result, indent=1))
    out = args.out if args.out is not None else HERE / "README.md"
    saved = args.from_json or cache_dir() / "bench-last.json"
    if saved.exists():
        run = json.loads(saved.read_text())
        run["replicas"] = result
        saved.write_text(json.dumps(run, indent=1))
        return report(run, out)
    out.write_text(splice(out.read_text(), scale.replicas_section(result)))
    print(f"wrote the replicas section of {out} (no saved run at {saved})", file=sys.stderr)
    for name, target, figure, ok in scale.replicas_goals(result):
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure} (target {target})",
              file=sys.stderr)
    return 0


def run_scale(extra: str) -> dict[str, Any]:
    """``benchmarks/scale.py`` in its own process; its JSON result."""
    with tempfile.TemporaryDirectory(prefix="modelmon-scale-json-") as tmp:
        out = Path(tmp) / "scale.json"
        subprocess.run([sys.executable, str(HERE / "scale.py"), "--json", str(out),
                        *extra.split()], check=True, stdout=subprocess.DEVNULL)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replicas_only:
        return replicas_only(args)
    if args.scale_only:
        saved = args.from_json or cache_dir() / "bench-last.json"
        run = json.loads(saved.read_text())
        run["scale"] = run_scale(args.scale_args)
        saved.write_text(json.dumps(run, indent=1))
        return report(run, args.out if args.out is not None else HERE / "README.md")
    if args.from_json is not None:
        out = args.out if args.out is not None else HERE / "README.md"
        return report(json.loads(args.from_json.read_text()), out)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(ALL_TOOLS)
    if unknown:
        raise SystemExit(f"unknown tools {sorted(unknown)}; use {','.join(ALL_TOOLS)}")
    keys = [k.strip() for k in args.workloads.split(",") if k.strip()]
    configs = None if args.configs is None else set(args.configs.split(","))
    only_modes = None if args.modes is None else set(args.modes.split(","))
    workloads = [w for w in (QUICK if args.quick else FULL) if w.key in keys]
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    own = sys.executable
    if args.python == "current":
        peers = sys.executable
    elif args.python:
        own = peers = args.python
    else:
        peers = (str(ensure_venv()) if set(tools) - set(OWN_TOOLS) else sys.executable)

    def python_of(tool: str) -> str:
        return own if tool in OWN_TOOLS else peers

    out = args.out if args.out is not None else (None if args.quick else HERE / "README.md")

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="modelmon-bench-"))
    started = datetime.now(UTC)
    results: list[Result] = []
    window: list[Result] = []
    try:
        for w in workloads:
            print(f"writing workload {w.title} ...", file=sys.stderr, flush=True)
            write(w, data_dir)
        load_start = (os.getloadavg()[0] if args.quick
                      else wait_for_idle(args.max_load, args.wait_minutes))
        rows = [(tool, config, mode) for tool, config, modes in PLAN for mode in modes
                if tool in tools and (configs is None or config in configs)
                and (only_modes is None or mode in only_modes)]
        for w in workloads:
            for tool, config, mode in schedule(rows):
                r = measure(python_of(tool), tool, config, mode, w, data_dir=data_dir,
                            repeats=repeats, long_run=20.0,
                            min_seconds=0.0 if args.quick else MIN_SECONDS, max_runs=MAX_RUNS)
                print(f"({w.key}) {tool:9} {config:11} {mode:6} {fmt_s(r.median):>8} s "
                      f"peak {r.peak_mb:6.0f} MiB  load {r.load:.2f}  {flags(r)}",
                      file=sys.stderr, flush=True)
                results.append(r)
        big = max(workloads, key=lambda w: w.current_bytes, default=None)
        if "modelmon" in tools and big is not None and not args.no_window:
            window = [measure(own, "modelmon", "auto", mode, big, data_dir=data_dir,
                              repeats=1, long_run=20.0) for mode in ("window", "columns")]
        pvalues = ([] if "modelmon" not in tools or args.quick
                   else run_pvalues(own))
        load_end = os.getloadavg()[0]
        scale_run = (None if args.quick or args.no_scale or "modelmon" not in tools
                     else run_scale(args.scale_args))
        replicas_run = (None if args.quick or args.no_replicas or "modelmon" not in tools
                        else run_scale(f"{REPLICAS_ARGS} {args.replicas_args}"))
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)

    versions = merged_versions(results)
    run = {"machine": machine(), "versions": versions, "loads": [load_start, load_end],
           "started": started.isoformat(), "quick": args.quick, "repeats": repeats,
           "results": [_dump(r) for r in results],
           "window": [_dump(r) for r in window], "scale": scale_run, "pvalues": pvalues,
           "replicas": replicas_run}
    last = args.json if args.json is not None else (
        None if args.quick else cache_dir() / "bench-last.json")
    if last is not None:
        last.parent.mkdir(parents=True, exist_ok=True)
        last.write_text(json.dumps(run, indent=1))
    return report(run, out)


def _dump(r: Result) -> dict[str, Any]:
    return {"tool": r.tool, "config": r.config, "mode": r.mode,
            "workload": [r.workload.key, r.workload.numeric, r.workload.categorical,
                         r.workload.rows],
            "times": r.times, "warmup": r.warmup, "rss": r.rss, "columns": r.columns,
            "versions": r.versions, "load": r.load}


def _load(d: dict[str, Any]) -> Result:
    return Result(d["tool"], d["config"], d["mode"], Workload(*d["workload"]), d["times"],
                  d["warmup"], d["rss"], d["columns"], d["versions"], load=d.get("load"))


def report(run: dict[str, Any], out: Path | None) -> int:
    """Write the report of a run (as saved in JSON) and print the goals."""
    results = [_load(d) for d in run["results"]]
    window = [_load(d) for d in run["window"]]
    workloads = list(dict.fromkeys(r.workload for r in results))
    rep = Report(results, workloads)
    text = rep.render(machine_info=run["machine"], versions=run["versions"],
                      loads=(run["loads"][0], run["loads"][1]),
                      started=datetime.fromisoformat(run["started"]), quick=run["quick"],
                      repeats=run["repeats"], window=window, scale_run=run.get("scale"),
                      replicas_run=run.get("replicas"),
                      pvalues=run.get("pvalues") or [])
    if out is not None:
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    for g in rep.goals(window):
        verdict = ("shown, met" if g.passed else "shown, not met") if g.shown else g.verdict
        print(f"{verdict}  {g.name}: {g.figure} (target {g.target})", file=sys.stderr)
    if run.get("scale") is not None:
        for name, target, figure, ok in scale.goals(run["scale"]):
            print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure} (target {target})",
                  file=sys.stderr)
    if run.get("replicas") is not None:
        for name, target, figure, ok in scale.replicas_goals(run["replicas"]):
            print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure} (target {target})",
                  file=sys.stderr)
    return 0


def goals_and_agreements(run: dict[str, Any]) -> dict[str, Any]:
    """The goals and the agreement figures of a saved run (for the smoke test)."""
    results = [_load(d) for d in run["results"]]
    window = [_load(d) for d in run["window"]]
    rep = Report(results, list(dict.fromkeys(r.workload for r in results)))
    return {
        "goals": [g.__dict__ for g in rep.goals(window)],
        "agreements": [
            {"workload": r.workload.key, "tool": r.tool, "config": r.config, "mode": r.mode,
             "what": a.what, "value": a.value, "exact_required": a.exact_required}
            for r in results for a in agreements(r, rep.by)],
    }


if __name__ == "__main__":
    sys.exit(main())
