"""The ``modelmon`` command: run, check, report, validate, rules and crd.

Sits beside the operator at the end of the data line: it calls ``check.run_check`` once and
prints the status the operator would write. Exit codes: 0 when no finding reaches
``--fail-on``, 1 when one does, 2 when there is no verdict: invalid input (file, field and
fix on stderr) or data the check cannot use (the Ready condition's reason and message).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from modelmon import __version__
from modelmon.api.policy import DEFAULT_MAX_BYTES, DEFAULT_REFERENCE_CACHE_BYTES, Egress, Policy

if TYPE_CHECKING:
    from modelmon.api.v1alpha1 import ColumnSummary, FeatureDriftResult, ModelMonitorStatus

# Each command imports what it needs when it runs (pandas, scipy, pydantic, kopf): `modelmon
# --version` and `modelmon --help` load none of them.

EXIT_OK, EXIT_FINDINGS, EXIT_INVALID = 0, 1, 2


def status_dict(status: ModelMonitorStatus) -> dict[str, Any]:
    """The status as the operator writes it (camelCase, JSON types)."""
    return status.model_dump(by_alias=True, mode="json")


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [header, *rows])


def _estimated_section(status: ModelMonitorStatus) -> list[str]:
    """Estimated performance with its bands; with labels in the window, one table with the
    realized metrics beside the estimates."""
    realized = status.performance
    names = [*status.estimated_performance, *(k for k in realized
                                              if k not in status.estimated_performance)]
    rows = []
    for metric in names:
        figure = status.estimated_performance.get(metric)
        rows.append([metric, *((_num(figure.value), _num(figure.lower), _num(figure.upper))
                               if figure is not None else ("-", "-", "-")),
                     *([_num(realized.get(metric))] if realized else [])])
    title = ("\nestimated performance (without labels; band: what sampling alone gives for "
             "a window this size)" + (", beside the realized metrics:" if realized else ":"))
    return [title, _table(rows, ["metric", "estimated", "lower", "upper",
                                 *(["realized"] if realized else [])])]


def _drift_order(finding: str, column: FeatureDriftResult, status: ModelMonitorStatus
                 ) -> tuple[bool, int, float, str]:
    """Drifted columns first, then by the severity of their finding (``finding``: its
    name), then by effect size (largest first; distances, which have none, after tests)."""
    rank = {"warning": 1, "critical": 2}
    severity = max((rank[f.severity] for f in status.findings if f.name == finding),
                   default=0)
    effect = column.effect_size if column.effect_size is not None else -1.0
    return (not column.drifted, -severity, -effect, column.name)


def _short(value: float | None) -> str:
    """Three significant digits, whole numbers from 1000 on (1295, not 1.3e+03)."""
    if value is not None and 1000 <= abs(value) < 1e9:
        return f"{value:.0f}"
    return _num(value, 3)


def _share(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 or share == 0 else "<1%"


def _summary(summary: ColumnSummary | None) -> str:
    """One side of a column in a few words: numeric mean, median and the 5th to 95th
    percentile; categorical the two top categories, and new ones by name."""
    if summary is None:
        return "-"
    if summary.categories is None:
        if summary.count == 0:
            return "no values"
        return (f"mean {_short(summary.mean)} median {_short(summary.median)} "
                f"p05-p95 {_short(summary.p05)}..{_short(summary.p95)}")
    text = " ".join(f"{c.name} {_share(c.share)}" for c in summary.top[:2])
    if summary.categories > 2:
        text += f" +{summary.categories - 2}"
    if summary.new_category_count:
        more = summary.new_category_count - len(summary.new_categories)
        text += (f"; new: {', '.join(summary.new_categories)}" + (f" +{more}" if more else "")
                 + f" ({_share(summary.new_category_share or 0.0)})")
    return text or "no values"


def render_table(name: str, status: ModelMonitorStatus) -> str:
    """A readable report of one check."""
    out = [f"monitor {name}: {status.phase}"]
    last = status.last_check
    if last is not None:
        out.append(f"  {last.current_rows} current rows vs {last.reference_rows} reference rows, "
                   f"{last.duration_seconds:.3f}s")
    drift = status.drift
    if drift is not None:
        out.append(f"\ndrift: {len(drift.drifted)} of {len(drift.features)} features drifted "
                   f"(share {drift.share:.2f}; "
                   f"dataset drift: {'yes' if drift.dataset_drift else 'no'})")
        rows = []
        extra = [("prediction", drift.prediction), ("target", drift.target)]
        shown = sorted(
            [*((column.name, f"drift.feature.{column.name}", column)
               for column in drift.features),
             *((f"[{k}] {v.name}", f"drift.{k}", v) for k, v in extra if v is not None)],
            key=lambda item: _drift_order(item[1], item[2], status))
        # The adjusted p-value is the one judged when spec.drift.correction is set.
        adjusted = any(column.adjusted_p_value is not None for _, _, column in shown)
        for label, _, column in shown:
            rows.append([label, column.kind, column.method, _num(column.statistic),
                         _num(column.p_value),
                         *([_num(column.adjusted_p_value)] if adjusted else []),
                         _num(column.effect_size),
                         _num(column.threshold) + (" (learned)"
                                                   if column.threshold_source == "learned"
                                                   else ""),
                         "DRIFT" if column.drifted else "ok",
                         _summary(column.reference), _summary(column.current),
                         column.message or ""])
        out.append(_table(rows, ["column", "kind", "method", "statistic", "p-value",
                                 *(["adj. p"] if adjusted else []), "effect",
                                 "threshold", "drift", "reference", "current", "note"]))
    estimated = status.estimated_performance
    if status.performance and not estimated:
        out.append("\nperformance:")
        out.append(_table([[k, f"{v:.4f}"] for k, v in status.performance.items()],
                          ["metric", "value"]))
    if estimated:
        out.extend(_estimated_section(status))
    elif status.estimation_reason is not None:
        out.append(f"\nestimated performance: not computed: {status.estimation_reason}")
    conf = status.confidence
    if conf is not None:
        if conf.reason is not None:
            out.append(f"\nconfidence: not computed: {conf.reason}")
        else:
            out.append(f"\nconfidence ({conf.rows} rows"
                       + (f", {conf.renormalised_rows} renormalised"
                          if conf.renormalised_rows else "") + "):")
            out.append(_table(
                [["meanConfidence", _num(conf.mean_confidence)],
                 [f"lowConfidenceShare (< {_num(conf.low_confidence_below)})",
                  _num(conf.low_confidence_share)],
                 *([f"classShare {k}", _num(v)] for k, v in conf.class_shares.items())],
                ["figure", "value"]))
    quality = status.data_quality
    if quality is not None and quality.columns:
        out.append("\ndata quality:")
        out.append(_table([[c.name, f"{c.missing_fraction:.2%}",
                            "-" if c.outlier_fraction is None else f"{c.outlier_fraction:.2%}",
                            "-" if c.out_of_range_fraction is None
                            else f"{c.out_of_range_fraction:.2%}",
                            "-" if c.new_categories is None else str(c.new_categories)]
                           for c in quality.columns],
                          ["column", "missing", "outliers", "out of range", "new categories"]))
        if quality.missing_columns:
            out.append(f"missing columns: {', '.join(quality.missing_columns)}")
        for change in quality.type_changes:
            out.append(f"type change: {change.name} {change.reference} -> {change.current}")
    labels = status.labels
    if labels is not None and labels.missing_since is not None:
        out.append(f"\nlabels: missing since {labels.missing_since:%Y-%m-%dT%H:%M:%SZ} "
                   f"({labels.missing_seconds:.0f}s): {labels.reason}")
    if status.not_checked:
        out.append("\nnot checked:")
        out.extend(f"  {n.bound} ({n.field}): {n.reason}" for n in status.not_checked)
    out.append("\nfindings:" if status.findings else "\nfindings: none")
    for finding in status.findings:
        out.append(f"  [{finding.severity}] {finding.name}: {finding.message}")
    return "\n".join(out) + "\n"


def _err(msg: str) -> None:
    print(f"modelmon: {msg}", file=sys.stderr)


#: The first spec field a message names ("spec.drift.method: ...").
_FIELD = re.compile(r"(?:^|[\s,(])((?:spec|metadata)(?:\.[\w-]+|\[[^\]]*\])*|kind|apiVersion):")


def _invalid(args: argparse.Namespace, out: TextIO, reason: str, message: str,
             file: str | None = None, monitor: str | None = None) -> int:
    """Exit 2: the message on stderr, and with ``-o json`` or ``-o yaml`` an error object on
    stdout (reason, message, the field it names or null, file and monitor)."""
    _err(message)
    output = getattr(args, "output", "table")
    if output in ("json", "yaml"):
        match = _FIELD.search(message)
        error = {"error": {"reason": reason, "message": message,
                           "field": match.group(1) if match else None,
                           "file": file, "monitor": monitor}}
        if output == "json":
            out.write(json.dumps(error, indent=2) + "\n")
        else:
            import yaml

            out.write(yaml.safe_dump(error, sort_keys=False))
    return EXIT_INVALID


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from modelmon.check import CheckError, run_check
    from modelmon.evaluation import at_least
    from modelmon.monitor_files import load_monitors
    from modelmon.sources.resolvers import LocalResolver

    path = Path(args.monitor)
    try:
        monitors = load_monitors(path)
    except CheckError as exc:
        return _invalid(args, out, exc.reason, str(exc), file=str(path))
    try:
        resolver = LocalResolver.for_monitor(path, args.secret or [])
    except ValueError as exc:
        return _invalid(args, out, "InvalidArgument", str(exc), file=str(path))
    now = args.at or datetime.now(UTC)
    worst = EXIT_OK
    results: list[tuple[str, ModelMonitorStatus]] = []
    for mon in monitors:
        status = run_check(mon.spec, base_dir=path.resolve().parent, now=now,
                           generation=mon.metadata.generation, resolver=resolver,
                           policy=_local_policy(args))
        ready = status.condition("Ready")
        if ready is not None and ready.status == "False":
            return _invalid(args, out, ready.reason,
                            f"{path}, {mon.metadata.name}: {ready.reason}: {ready.message}",
                            file=str(path), monitor=mon.metadata.name)
        results.append((mon.metadata.name, status))
        if any(at_least(f.severity, args.fail_on) for f in status.findings):
            worst = EXIT_FINDINGS
    if args.output == "table":
        out.write("\n".join(render_table(n, s) for n, s in results))
    else:
        data: Any = ({"name": n, "status": status_dict(s)} for n, s in results)
        data = list(data) if len(results) > 1 else status_dict(results[0][1])
        if args.output == "json":
            out.write(json.dumps(data, indent=2) + "\n")
        else:
            import yaml

            out.write(yaml.safe_dump(data, sort_keys=False))
    return worst


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    """`check`, written as an HTML report (``outputs.report``) instead of printed."""
    from modelmon.check import CheckError, run_check_with_shapes
    from modelmon.evaluation import at_least
    from modelmon.monitor_files import load_monitors
    from modelmon.outputs.report import MonitorReport, render_report
    from modelmon.sources.resolvers import LocalResolver

    path = Path(args.monitor)
    try:
        monitors = load_monitors(path)
        resolver = LocalResolver.for_monitor(path, args.secret or [])
    except (CheckError, ValueError) as exc:
        _err(str(exc))
        return EXIT_INVALID
    now = args.at or datetime.now(UTC)
    worst = EXIT_OK
    reports: list[MonitorReport] = []
    for mon in monitors:
        result = run_check_with_shapes(mon.spec, base_dir=path.resolve().parent, now=now,
                                       generation=mon.metadata.generation, resolver=resolver,
                                       policy=_local_policy(args))
        ready = result.status.condition("Ready")
        if ready is not None and ready.status == "False":
            _err(f"{path}, {mon.metadata.name}: {ready.reason}: {ready.message}")
            return EXIT_INVALID
        reports.append(MonitorReport(name=mon.metadata.name, namespace=mon.metadata.namespace,
                                     spec=mon.spec, status=result.status,
                                     shapes=result.shapes))
        if any(at_least(f.severity, args.fail_on) for f in result.status.findings):
            worst = EXIT_FINDINGS
    document = render_report(reports)
    if args.output == "-":
        out.write(document)
        return worst
    try:
        Path(args.output).write_text(document, encoding="utf-8")
    except OSError as exc:
        _err(f"-o {args.output}: cannot write the report: {exc.strerror or exc}")
        return EXIT_INVALID
    print(f"wrote {args.output} ({len(document.encode()) / 2**20:.1f} MiB)", file=sys.stderr)
    return worst


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    from modelmon.monitor_files import read_tree

    bad = False
    for name in args.files:
        files = read_tree(Path(name))
        for read in files:
            for problem in read.problems:
                bad = True
                _err(problem)
            for mon in read.monitors:
                out.write(f"{read.path}: ModelMonitor {mon.metadata.name} is valid\n")
            skipped = ", ".join(kind + (f" x{n}" if n > 1 else "")
                                for kind, n in sorted(read.skipped.items()))
            if read.kustomization:
                out.write(f"{read.path}: kustomization, its resources read"
                          + (f"; skipped {skipped}" if skipped else "") + "\n")
            elif not read.monitors and not read.problems:
                out.write(f"{read.path}: no ModelMonitor"
                          + (f"; skipped {skipped}" if skipped else "") + "\n")
            elif skipped:
                out.write(f"{read.path}: skipped {skipped}\n")
        if not any(read.monitors for read in files) and not any(r.problems for r in files):
            bad = True
            _err(f"{name}: no ModelMonitor document found")
        if Path(name).is_dir():
            found = sum(len(read.monitors) for read in files)
            count = sum(not r.kustomization for r in files)
            out.write(f"{name}: read {count} YAML file{'s' * (count != 1)}, "
                      f"{found} ModelMonitor{'s' * (found != 1)}\n")
    return EXIT_INVALID if bad else EXIT_OK


def cmd_rules(args: argparse.Namespace, out: TextIO) -> int:
    import yaml

    from modelmon.check import CheckError
    from modelmon.monitor_files import load_monitors
    from modelmon.outputs.rules import prometheus_rule

    try:
        monitors = load_monitors(Path(args.monitor))
    except CheckError as exc:
        _err(str(exc))
        return EXIT_INVALID
    docs = [prometheus_rule(args.namespace or m.metadata.namespace or "default",
                            m.metadata.name, m.spec,
                            report_base_url=args.report_base_url or None) for m in monitors]
    out.write(yaml.safe_dump_all(docs, sort_keys=False, width=100))
    return EXIT_OK


def cmd_crd(args: argparse.Namespace, out: TextIO) -> int:
    from modelmon.api.crd import crd_yaml

    out.write(crd_yaml())
    return EXIT_OK


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_policy(args: argparse.Namespace) -> Policy:
    """The administrator's bounds from `run`'s flags: closed defaults, then what is given."""
    return dataclasses.replace(Policy.operator(), local_paths=tuple(args.allow_local_path),
                               max_bytes=args.max_source_bytes,
                               max_memory=args.max_check_memory,
                               egress=Egress(allow=args.egress_allow, deny=args.egress_deny))


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from modelmon.runner import Options, run

    return run(Options(namespaces=args.namespace, metrics_port=args.metrics_port,
                       health_port=args.health_port, log_format=args.log_format,
                       log_level=args.log_level.upper(), workers=args.workers,
                       rules_resync_seconds=args.rules_resync,
                       kubeconfig=args.kubeconfig, policy=run_policy(args),
                       report_port=args.report_port,
                       report_base_url=args.report_base_url or None,
                       replication=args.replication, lease_namespace=args.lease_namespace or None,
                       identity=args.id or None,
                       lease_duration_seconds=args.lease_duration,
                       reference_cache_bytes=args.reference_cache_bytes))


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MODELMON_{name}", default)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _seconds(text: str) -> float:
    from modelmon.api.v1alpha1 import parse_duration

    try:
        value = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not longer than 0s")
    return value


def _bytes(text: str) -> int:
    from modelmon.api.v1alpha1 import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _memory(text: str) -> int | None:
    """A byte count, or (empty) the default: a share of the container's memory limit."""
    from modelmon.api.policy import default_max_memory

    return _bytes(text) if text.strip() else default_max_memory()


def _cache_bytes(text: str) -> int:
    """A byte count, or (empty) the default: a share of the container's memory limit,
    else a fixed size."""
    from modelmon.api.policy import default_reference_cache_bytes

    return _bytes(text) if text.strip() else default_reference_cache_bytes()


def _directory(text: str) -> Path:
    """An absolute directory, resolved (symlinks, ``..``) as source paths will be."""
    path = Path(text.strip())
    if not path.is_absolute():
        raise argparse.ArgumentTypeError(f"{text!r} is not an absolute path")
    return path.resolve()


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port")
    return value


def _port_or_off(text: str) -> int:
    """A TCP port, or 0 for off ("0", "off" or empty)."""
    if text.strip().lower() in ("", "0", "off"):
        return 0
    return _port(text)


def _switch(text: str) -> bool:
    """A yes/no flag value."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _lease_seconds(text: str) -> float:
    """A lease duration: whole seconds, at least 4 (renewed every third of it)."""
    value = _seconds(text)
    if value < 4 or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds of "
                                         "at least 4s, e.g. 20s")
    return value


def _name(text: str) -> str:
    return text.strip()


def _base_url(text: str) -> str:
    """An http(s) URL without query or fragment, its trailing "/" dropped; "" for none."""
    text = text.strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
            or parts.fragment:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http(s) URL without query or fragment, e.g. "
            "https://modelmon.example.com")
    return text.rstrip("/")


def _egress(text: str) -> tuple[str, ...]:
    from modelmon.sources import egress

    try:
        return egress.parse_entries(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: `run`'s egress lists: dest and environment twin (comma-separated; empty: none).
EGRESS_ENV = (("egress_allow", "EGRESS_ALLOW"), ("egress_deny", "EGRESS_DENY"))

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _choice(options: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in options:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not one of {', '.join(options)}")
        return text.lower()
    return parse


def _option_default(name: str) -> Callable[[], str]:
    """The default of `run`'s option ``name``, as text: read, when `run` needs it, from
    ``runner.Options``, the one place it is written (the runner brings kopf in)."""
    def default() -> str:
        from modelmon.runner import Options

        value = getattr(Options, name)
        return f"{value:g}s" if name.endswith("_seconds") else str(value)
    return default


#: `run` options filled from MODELMON_<NAME> when the flag is absent: name, parse, default.
RUN_ENV: dict[str, tuple[str, Callable[[str], Any], Callable[[], str]]] = {
    "metrics_port": ("METRICS_PORT", _port, _option_default("metrics_port")),
    "health_port": ("HEALTH_PORT", _port, _option_default("health_port")),
    "log_format": ("LOG_FORMAT", _choice(LOG_FORMATS),
                   lambda: "text" if sys.stderr.isatty() else "json"),
    "log_level": ("LOG_LEVEL", _choice(LOG_LEVELS), _option_default("log_level")),
    "workers": ("WORKERS", _positive, _option_default("workers")),
    "rules_resync": ("RULES_RESYNC", _seconds, _option_default("rules_resync_seconds")),
    "max_source_bytes": ("MAX_SOURCE_BYTES", _bytes, lambda: str(DEFAULT_MAX_BYTES)),
    "max_check_memory": ("MAX_CHECK_MEMORY", _memory, lambda: ""),
    "reference_cache_bytes": ("REFERENCE_CACHE_BYTES", _cache_bytes, lambda: ""),
    "report_port": ("REPORT_PORT", _port_or_off, lambda: "0"),
    "report_base_url": ("REPORT_BASE_URL", _base_url, lambda: ""),
    "replication": ("REPLICATION", _switch, lambda: "false"),
    "lease_namespace": ("LEASE_NAMESPACE", _name, lambda: ""),
    "id": ("ID", _name, lambda: ""),
    "lease_duration": ("LEASE_DURATION", _lease_seconds,
                       _option_default("lease_duration_seconds")),
}


def _run_env(command_line: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill `run`'s absent flags from their environment twins; a bad value is a usage
    error that names the variable."""
    given = args.namespace if args.namespace is not None else [_env("NAMESPACE", "")]
    args.namespace = [n.strip() for item in given for n in item.split(",") if n.strip()]
    if args.allow_local_path is None:
        dirs = _env("ALLOW_LOCAL_PATH", "")
        try:
            args.allow_local_path = [_directory(d) for d in dirs.split(",") if d.strip()]
        except argparse.ArgumentTypeError as exc:
            command_line.error(f"MODELMON_ALLOW_LOCAL_PATH: {exc}")
    for dest, (name, parse, default) in RUN_ENV.items():
        if getattr(args, dest) is not None:
            continue
        text = os.environ.get(f"MODELMON_{name}")
        try:
            setattr(args, dest, parse(default() if text is None else text))
        except argparse.ArgumentTypeError as exc:
            command_line.error(f"MODELMON_{name}: {exc}")
    for dest, name in EGRESS_ENV:
        groups = getattr(args, dest)
        if groups is None:
            text = os.environ.get(f"MODELMON_{name}", "")
            try:
                groups = [_egress(text)] if text.strip() else []
            except argparse.ArgumentTypeError as exc:
                command_line.error(f"MODELMON_{name}: {exc}")
        setattr(args, dest, tuple(dict.fromkeys(e for group in groups for e in group)))


def _check_flags(command: argparse.ArgumentParser) -> None:
    """The flags `check` and `report` share."""
    command.add_argument("--fail-on", choices=["warning", "critical"], default="critical",
                         help="exit 1 when a finding has at least this severity "
                              "(default: critical)")
    command.add_argument("--at", type=_time, default=None,
                         help="check time (ISO 8601); current.window ends here (default: now)")
    command.add_argument("--secret", action="append", metavar="NAME/KEY=VALUE",
                         help="a Secret key the monitor references (=@FILE reads a file); "
                              "repeatable; also read from MODELMON_SECRET_<NAME>_<KEY>")
    command.add_argument("--max-check-memory", type=_bytes, default=None, metavar="BYTES",
                         help="the most bytes of window data held at once, as `run` has it: "
                              "a larger url window (parquet, CSV) is streamed; default: a "
                              "quarter of the container's memory limit, else no bound")


def _local_policy(args: argparse.Namespace) -> Policy:
    """``check`` and ``report``: the local policy, with ``--max-check-memory`` if given."""
    local = Policy.local()
    if args.max_check_memory is None:
        return local
    return dataclasses.replace(local, max_memory=args.max_check_memory)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="modelmon",
                                   description="ML model monitoring for Kubernetes.")
    root.add_argument("--version", action="version", version=f"modelmon {__version__}")
    sub = root.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check",
                           help="run one check of a monitor on its data, no cluster needed")
    check.add_argument("monitor", help="ModelMonitor YAML file")
    check.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    _check_flags(check)
    check.set_defaults(func=cmd_check)

    report = sub.add_parser("report",
                            help="run one check like `check` and write it as a self-contained "
                                 "HTML report with plots (opens offline)")
    report.add_argument("monitor", help="ModelMonitor YAML file")
    report.add_argument("-o", "--output", default="-", metavar="FILE",
                        help="the HTML file to write (default: -, standard output)")
    _check_flags(report)
    report.set_defaults(func=cmd_report)

    validate = sub.add_parser(
        "validate", help="validate ModelMonitor YAML files, folders and kustomize directories",
        description="A folder is read recursively (every .yaml and .yml file); a kustomize "
                    "directory through its resources and components. Documents of other "
                    "kinds are skipped; each file read is named.")
    validate.add_argument("files", nargs="+", metavar="PATH")
    validate.set_defaults(func=cmd_validate)

    run = sub.add_parser("run", help="run the operator (watches ModelMonitors in a cluster)",
                         description="Each flag has an environment variable twin, shown in "
                                     "brackets; the flag wins.")
    # Defaults are None here and filled from the environment after parsing (_run_env),
    # so that a bad variable is a usage error of `run` alone and a flag replaces it.
    run.add_argument("--namespace", action="append", default=None,
                     help="watch only this namespace; repeatable or comma-separated; default: "
                          "all namespaces [MODELMON_NAMESPACE]")
    run.add_argument("--metrics-port", type=_port, default=None,
                     help="port of /metrics (default 8000) [MODELMON_METRICS_PORT]")
    run.add_argument("--health-port", type=_port, default=None,
                     help="port of /healthz and /readyz (default 8080) [MODELMON_HEALTH_PORT]")
    run.add_argument("--log-format", choices=LOG_FORMATS, default=None,
                     help="default: json unless stderr is a terminal [MODELMON_LOG_FORMAT]")
    run.add_argument("--log-level", choices=LOG_LEVELS, default=None,
                     help="default: info [MODELMON_LOG_LEVEL]")
    run.add_argument("--workers", type=_positive, default=None,
                     help="threads that run checks (default 2) [MODELMON_WORKERS]")
    run.add_argument("--rules-resync", type=_seconds, default=None, metavar="DURATION",
                     help="how often each PrometheusRule is compared with the cluster's copy "
                          "and restored if it was edited or deleted (default 10m) "
                          "[MODELMON_RULES_RESYNC]")
    run.add_argument("--egress-allow", action="append", type=_egress, default=None,
                     metavar="NET_OR_HOST",
                     help="where monitors may make the operator connect (sources, Prometheus, "
                          "notifiers): a network (10.0.0.0/8), an address, a host name or "
                          "*.suffix; repeatable or comma-separated; default: anywhere except "
                          "the addresses refused by default (loopback, link-local, cloud "
                          "metadata, unspecified), which only a network at least as specific "
                          "as theirs opens [MODELMON_EGRESS_ALLOW]")
    run.add_argument("--egress-deny", action="append", type=_egress, default=None,
                     metavar="NET_OR_HOST",
                     help="where monitors may never make the operator connect, even if "
                          "allowed; same forms; repeatable or comma-separated "
                          "[MODELMON_EGRESS_DENY]")
    run.add_argument("--allow-local-path", action="append", type=_directory, default=None,
                     metavar="DIR",
                     help="let url sources read local files under this directory (resolved, "
                          "symlinks followed); repeatable; default: none, no local file is read "
                          "[MODELMON_ALLOW_LOCAL_PATH, comma-separated]")
    run.add_argument("--max-source-bytes", type=_bytes, default=None, metavar="BYTES",
                     help="the most bytes one source may bring in, and the most a monitor's "
                          "maxBytes may ask for: a number or a quantity like 64Mi (default "
                          f"{DEFAULT_MAX_BYTES // 2**20}Mi) [MODELMON_MAX_SOURCE_BYTES]")
    run.add_argument("--max-check-memory", type=_bytes, default=None, metavar="BYTES",
                     help="the most bytes of window data one check holds at once: a url "
                          "window (parquet, CSV) larger than this is streamed, and a column "
                          "whose method needs every value must fit; default: a quarter of "
                          "the container's memory limit (its cgroup's), no bound without one "
                          "[MODELMON_MAX_CHECK_MEMORY]")
    run.add_argument("--reference-cache-bytes", type=_bytes, default=None, metavar="BYTES",
                     help="the most bytes of fitted references kept between checks (each "
                          "estimated when it is fitted; the least recently checked go "
                          "first, and one larger than this is fitted at every check); "
                          "default: a quarter of the container's memory limit, else "
                          f"{DEFAULT_REFERENCE_CACHE_BYTES // 2**20}Mi "
                          "[MODELMON_REFERENCE_CACHE_BYTES]")
    run.add_argument("--report-port", type=_port_or_off, default=None, metavar="PORT",
                     help="serve the live report (/monitors, /monitors/NAMESPACE/NAME) on "
                          "this port; it shows summaries of production data to anyone who "
                          "can reach it (README: \"The live report\"); default: off "
                          "[MODELMON_REPORT_PORT]")
    run.add_argument("--report-base-url", type=_base_url, default=None, metavar="URL",
                     help="where users reach the live report, e.g. https://modelmon.example"
                          ".com; notifications and the PrometheusRules' report_url "
                          "annotation then link to URL/monitors/NAMESPACE/NAME; default: no "
                          "link [MODELMON_REPORT_BASE_URL]")
    run.add_argument("--replication", action="store_const", const=True, default=None,
                     help="share the monitors with the other replicas through membership "
                          "Leases (off: this process checks every monitor) "
                          "[MODELMON_REPLICATION=true]")
    run.add_argument("--lease-namespace", default=None, metavar="NAMESPACE",
                     help="where the replicas' Leases live (default: the pod's namespace, "
                          "else default) [MODELMON_LEASE_NAMESPACE]")
    run.add_argument("--id", default=None, metavar="ID",
                     help="this replica's id, unique among them (default: the pod's name, "
                          "else host name and process id) [MODELMON_ID]")
    run.add_argument("--lease-duration", type=_lease_seconds, default=None,
                     metavar="DURATION",
                     help="the Leases' duration (default 20s; renewed every third of it) "
                          "[MODELMON_LEASE_DURATION]")
    run.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None,
                     help="kubeconfig file; default: in-cluster service account, else "
                          "$KUBECONFIG or ~/.kube/config")
    run.set_defaults(func=cmd_run)

    rules = sub.add_parser("rules",
                           help="print the PrometheusRule the operator would generate")
    rules.add_argument("monitor", help="ModelMonitor YAML file")
    rules.add_argument("-n", "--namespace", default=None,
                       help="namespace (default: the monitor's, else default)")
    rules.add_argument("--report-base-url", type=_base_url, default="", metavar="URL",
                       help="as `run --report-base-url`: each alert's report_url "
                            "annotation links to the monitor's live report")
    rules.set_defaults(func=cmd_rules)

    crd = sub.add_parser("crd", help="print the ModelMonitor CRD")
    crd.set_defaults(func=cmd_crd)
    return root


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with `run`'s absent flags taken from the environment."""
    command_line = parser()
    args = command_line.parse_args(argv)
    if args.command == "run":
        _run_env(command_line, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    code: int = args.func(args, sys.stdout)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
