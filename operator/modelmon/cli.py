"""The ``modelmon`` command: run, check, validate, rules and crd.

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
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from modelmon import __version__
from modelmon.api.policy import DEFAULT_MAX_BYTES, Egress, Policy
from modelmon.api.v1alpha1 import ModelMonitorStatus, parse_bytes, parse_duration
from modelmon.check import CheckError, run_check
from modelmon.evaluation import at_least
from modelmon.monitor_files import load_monitors
from modelmon.sources import egress
from modelmon.sources.resolvers import LocalResolver

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
        shown = [*((column.name, column) for column in drift.features),
                 *((f"[{k}] {v.name}", v) for k, v in extra if v is not None)]
        # The adjusted p-value is the one judged when spec.drift.correction is set.
        adjusted = any(column.adjusted_p_value is not None for _, column in shown)
        for label, column in shown:
            rows.append([label, column.kind, column.method, _num(column.statistic),
                         _num(column.p_value),
                         *([_num(column.adjusted_p_value)] if adjusted else []),
                         _num(column.effect_size),
                         _num(column.threshold) + (" (learned)"
                                                   if column.threshold_source == "learned"
                                                   else ""),
                         "DRIFT" if column.drifted else "ok", column.message or ""])
        out.append(_table(rows, ["column", "kind", "method", "statistic", "p-value",
                                 *(["adj. p"] if adjusted else []), "effect",
                                 "threshold", "drift", "note"]))
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


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.monitor)
    try:
        monitors = load_monitors(path)
    except CheckError as exc:
        _err(str(exc))
        return EXIT_INVALID
    try:
        resolver = LocalResolver.for_monitor(path, args.secret or [])
    except ValueError as exc:
        _err(str(exc))
        return EXIT_INVALID
    now = args.at or datetime.now(UTC)
    worst = EXIT_OK
    results: list[tuple[str, ModelMonitorStatus]] = []
    for mon in monitors:
        status = run_check(mon.spec, base_dir=path.resolve().parent, now=now,
                           generation=mon.metadata.generation, resolver=resolver)
        ready = status.condition("Ready")
        if ready is not None and ready.status == "False":
            _err(f"{path}, {mon.metadata.name}: {ready.reason}: {ready.message}")
            return EXIT_INVALID
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
            out.write(yaml.safe_dump(data, sort_keys=False))
    return worst


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    bad = False
    for name in args.files:
        try:
            monitors = load_monitors(Path(name))
        except CheckError as exc:
            bad = True
            _err(str(exc))
            continue
        for mon in monitors:
            out.write(f"{name}: ModelMonitor {mon.metadata.name} is valid\n")
    return EXIT_INVALID if bad else EXIT_OK


def cmd_rules(args: argparse.Namespace, out: TextIO) -> int:
    from modelmon.outputs.rules import prometheus_rule

    try:
        monitors = load_monitors(Path(args.monitor))
    except CheckError as exc:
        _err(str(exc))
        return EXIT_INVALID
    docs = [prometheus_rule(args.namespace or m.metadata.namespace or "default",
                            m.metadata.name, m.spec) for m in monitors]
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
                               egress=Egress(allow=args.egress_allow, deny=args.egress_deny))


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from modelmon.runner import Options, run

    return run(Options(namespaces=args.namespace, metrics_port=args.metrics_port,
                       health_port=args.health_port, log_format=args.log_format,
                       log_level=args.log_level.upper(), workers=args.workers,
                       rules_resync_seconds=args.rules_resync,
                       kubeconfig=args.kubeconfig, policy=run_policy(args)))


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
    try:
        value = parse_duration(text).total_seconds()
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30s, 10m or 1h")
    return value


def _bytes(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def _egress(text: str) -> tuple[str, ...]:
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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="modelmon",
                                   description="ML model monitoring for Kubernetes.")
    root.add_argument("--version", action="version", version=f"modelmon {__version__}")
    sub = root.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check",
                           help="run one check of a monitor on its data, no cluster needed")
    check.add_argument("monitor", help="ModelMonitor YAML file")
    check.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    check.add_argument("--fail-on", choices=["warning", "critical"], default="critical",
                       help="exit 1 when a finding has at least this severity (default: critical)")
    check.add_argument("--at", type=_time, default=None,
                       help="check time (ISO 8601); current.window ends here (default: now)")
    check.add_argument("--secret", action="append", metavar="NAME/KEY=VALUE",
                       help="a Secret key the monitor references (=@FILE reads a file); "
                            "repeatable; also read from MODELMON_SECRET_<NAME>_<KEY>")
    check.set_defaults(func=cmd_check)

    validate = sub.add_parser("validate", help="validate ModelMonitor YAML files")
    validate.add_argument("files", nargs="+", metavar="FILE")
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
    run.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None,
                     help="kubeconfig file; default: in-cluster service account, else "
                          "$KUBECONFIG or ~/.kube/config")
    run.set_defaults(func=cmd_run)

    rules = sub.add_parser("rules",
                           help="print the PrometheusRule the operator would generate")
    rules.add_argument("monitor", help="ModelMonitor YAML file")
    rules.add_argument("-n", "--namespace", default=None,
                       help="namespace (default: the monitor's, else default)")
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
