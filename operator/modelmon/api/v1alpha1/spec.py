"""The ModelMonitor spec: what a team commits, and the document that carries it.

First stop on the data line (``api``): the models here validate ``spec`` and are walked by
``crd`` into the CRD's schema, in the order their fields are declared. Every cross-field
rule is written twice on purpose: as a CEL rule (``cel``) that the apiserver enforces at
``kubectl apply`` and as a pydantic validator that the operator and ``modelmon validate``
enforce. Tests run one corpus of bad monitors through both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelmon.api.v1alpha1.common import (
    CONTROL_CHARACTERS,
    K8S_LABEL_KEY_PATTERN,
    K8S_LABEL_VALUE_PATTERN,
    NO_CONTROLS_PATTERN,
    ApiModel,
    ByteCount,
    CategoricalDriftMethodOrAuto,
    CelRule,
    ColumnName,
    Correction,
    DataFormat,
    DriftMethodName,
    DriftMethodOrAuto,
    Duration,
    Fraction,
    MetricName,
    NoControls,
    NumericDriftMethodOrAuto,
    Severity,
    Task,
    cel_at_least,
    cel_is_duration,
    cel_longer_than_zero,
    k8s_label_problem,
    parse_bytes,
    parse_duration,
)

#: Drift methods that are tests: their threshold is a p-value, so at most 1 (the registry's
#: ``uses_p_value`` methods; tests/unit/api checks the two agree).
P_VALUE_METHODS = ("anderson", "chisquare", "cvm", "ks", "ztest")
_P_VALUE_CEL = "[" + ", ".join(f"'{m}'" for m in P_VALUE_METHODS) + "]"

#: The drift methods of each kind of column (the registry's; tests/unit/api checks the two
#: agree). Some (hellinger, jensenshannon, psi) score both kinds.
KIND_METHODS: dict[str, tuple[str, ...]] = {
    "numeric": tuple(m for m in get_args(NumericDriftMethodOrAuto) if m != "auto"),
    "categorical": tuple(m for m in get_args(CategoricalDriftMethodOrAuto) if m != "auto"),
}
#: spec.drift's field that chooses the method of each kind.
KIND_FIELDS = {"numeric": "numericMethod", "categorical": "categoricalMethod"}


def _cel_list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{m}'" for m in names) + "]"


def _drift_uses_test_cel() -> str:
    """CEL on DriftSpec, true when a column without its own method may be scored by a
    test: the twin of ``DriftSpec.kind_method`` (the kind's field, else ``method``, which
    stands for auto where it does not apply: auto is no test) in P_VALUE_METHODS."""
    method = "(has(self.method) ? self.method : 'auto')"
    return " || ".join(
        f"(has(self.{field}) ? self.{field} : {method}) in "
        + _cel_list(tuple(m for m in KIND_METHODS[kind] if m in P_VALUE_METHODS))
        for kind, field in KIND_FIELDS.items())


def _repeated(names: list[str]) -> list[str]:
    """The names listed more than once, sorted."""
    return sorted({name for name in names if names.count(name) > 1})


def _p_value_threshold_rule() -> CelRule:
    """The CEL twin of ``_check_p_value_threshold`` for a model with its own optional
    ``method`` (a feature's override); without a method there is no rule to break."""
    return CelRule(rule="!has(self.threshold) || self.threshold <= 1.0 || "
                        f"!has(self.method) || !(self.method in {_P_VALUE_CEL})",
                   message="a test's threshold is a p-value: set it in [0, 1]",
                   fieldPath=".threshold")


def _check_p_value_threshold(method: str | None, threshold: float | None,
                             chosen_by: str | None = None) -> None:
    """A test's threshold must be a p-value; ``chosen_by`` names the field that chose the
    test when it is not the threshold's own model's ``method``."""
    if method in P_VALUE_METHODS and threshold is not None and threshold > 1.0:
        source = f" (spec.drift.{chosen_by})" if chosen_by else ""
        raise ValueError(f"threshold: {method}{source} is a test and its threshold a p-value; "
                         f"set it in [0, 1], not {threshold}")


#: Metrics that make sense for each task; the CEL rule on ``spec`` mirrors this table.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binaryClassification": (
        "accuracy", "precision", "recall", "f1", "rocAuc", "logLoss", "brier"),
    "multiclassClassification": (
        "accuracy", "precisionMacro", "recallMacro", "f1Macro",
        "precisionWeighted", "recallWeighted", "f1Weighted"),
    "regression": ("mae", "rmse", "mape", "r2"),
}

#: Metrics computed from the predicted probability rather than the label.
SCORE_METRICS = ("rocAuc", "logLoss", "brier")

#: Drift methods that need every value of the window: refused with sql.pushdown, which
#: reads aggregates (``stats.sketch`` scores the others from them).
EXACT_ONLY_METHODS = ("anderson", "cvm", "energy")
#: Performance metrics that need every score of the window: refused with sql.pushdown.
EXACT_ONLY_METRICS = ("rocAuc",)
_PUSHDOWN_CEL = ("(has(self.current.source.sql) && has(self.current.source.sql.pushdown) "
                 "&& self.current.source.sql.pushdown) || has(self.current.source.engine)")
_REFERENCE_PUSHDOWN_CEL = ("has(self.reference.source.sql) && "
                           "has(self.reference.source.sql.pushdown) && "
                           "self.reference.source.sql.pushdown")
#: Why a reference fitted from aggregates refuses what it refuses (CEL and pydantic).
REFERENCE_PUSHDOWN_NEEDS_WINDOW = (
    "reference.source.sql.pushdown fits the reference from aggregates, which score only a "
    "window read as aggregates: set current.source.sql.pushdown (or current.source.engine), "
    "or turn reference pushdown off")
REFERENCE_PUSHDOWN_NO_LEARNING = (
    "reference.source.sql.pushdown fits the reference from aggregates: learnThreshold "
    "scores chunks of the reference's rows; turn learnThreshold off or reference pushdown "
    "off")
#: Engines that aggregate a url source's window instead of loading it (``engine``).
UrlEngine = Literal["duckdb"]
#: The url formats an engine reads.
ENGINE_FORMATS: tuple[DataFormat, ...] = ("parquet",)
_EXACT_ONLY_CEL = "[" + ", ".join(f"'{m}'" for m in EXACT_ONLY_METHODS) + "]"

#: Metrics estimated without labels for each task (``stats.estimation``'s BINARY_METRICS,
#: MULTICLASS_METRICS and REGRESSION_METRICS; a test holds them equal, as ``api`` imports
#: nothing of modelmon's); the CEL rule on ``spec`` mirrors this table.
ESTIMATED_METRICS: dict[str, tuple[str, ...]] = {
    "binaryClassification": ("accuracy", "precision", "recall", "f1", "rocAuc"),
    "multiclassClassification": (
        "accuracy", "precisionMacro", "recallMacro", "f1Macro",
        "precisionWeighted", "recallWeighted", "f1Weighted", "rocAuc"),
    "regression": ("mae", "rmse"),
}
#: What estimation needs besides columns.target, by task (pydantic and CEL say the same).
ESTIMATION_INPUTS: dict[str, str] = {
    "binaryClassification": "columns.predictionProbability",
    "multiclassClassification": "columns.classProbabilities (one column per class)",
    "regression": "columns.prediction",
}

#: The shortest schedule.interval.
MIN_INTERVAL = "10s"
#: Per-column drift overrides a monitor may list (a bound the CEL cost estimate needs).
MAX_COLUMN_OVERRIDES = 2000

#: What a source's ``url`` may be: a local path (no scheme), or one of the documented
#: schemes. Go's RE2 (the CRD's CEL rule), Python and pydantic read it the same way.
URL_SCHEMES = ("file", "http", "https", "s3", "s3a", "gs", "gcs")
URL_PATTERN = (rf"^((?i:{'|'.join(URL_SCHEMES)})://|[A-Za-z]:[/\\]|[^A-Za-z]"
               r"|[A-Za-z][A-Za-z0-9+.-]*([^A-Za-z0-9+.:-]|$))")
URL_MESSAGE = ("url must be a local path, or start with "
               f"{', '.join(f'{s}://' for s in URL_SCHEMES[:-1])} or {URL_SCHEMES[-1]}://")
_URL = re.compile(URL_PATTERN)


class ModelRef(ApiModel):
    """The model this monitor watches."""

    name: Annotated[str, Field(min_length=1, max_length=253), NoControls()]
    """Model name, used in metric and alert labels (no control characters)."""
    version: Annotated[str, Field(max_length=128), NoControls()] | None = None
    """Model version, shown in status and notifications (no control characters)."""
    task: Task
    """What the model predicts; it decides which performance metrics apply."""


class Schedule(ApiModel):
    """When checks run."""

    cel = (CelRule(rule=f"!{cel_is_duration('self.interval')} "
                        f"|| {cel_at_least('self.interval', MIN_INTERVAL)}",
                   message=f"interval must be at least {MIN_INTERVAL}",
                   fieldPath=".interval"),)

    interval: Duration = "10m"
    """Time between checks, as a duration such as 30s, 10m, 1h or 1d (at least 10s)."""

    @model_validator(mode="after")
    def _interval_floor(self) -> Schedule:
        if parse_duration(self.interval) < parse_duration(MIN_INTERVAL):
            raise ValueError(f"interval: must be at least {MIN_INTERVAL}, got {self.interval}")
        return self


class SecretKeyRef(ApiModel):
    """One key of a Secret in the monitor's namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the Secret."""
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
    """Key in the Secret's data."""


class SecretRef(ApiModel):
    """A Secret in the monitor's namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the Secret."""


class SqlSource(ApiModel):
    """Rows returned by a SQL query (SQLAlchemy; PostgreSQL, SQLite, MySQL, ...)."""

    connection_secret_ref: SecretKeyRef
    """The Secret key that holds the SQLAlchemy URL, with its credentials, e.g.
    postgresql+psycopg://monitor:PASSWORD@db:5432/predictions."""
    query: Annotated[str, Field(min_length=1, max_length=65536)]
    """A SELECT. :window_start and :window_end are bound as parameters (timezone-aware
    UTC timestamps) to the current window; they need spec.current.window. The query runs
    in a read-only transaction."""
    timeout: Duration = "30s"
    """Statement timeout (enforced by PostgreSQL and SQLite) and connect timeout."""
    max_rows: Annotated[int, Field(ge=1, le=100_000_000)] = 1_000_000
    """More rows than this fail the check with InvalidData; narrow the query instead."""
    pushdown: bool = False
    """The check fetches no rows but asks the database for aggregates
    over the query's rows in the window (per column: counts per reference bin, missing,
    infinite and out-of-range counts, category counts, a 1000-step quantile grid for ks
    and wasserstein; sums for the performance metrics); maxRows then bounds the distinct
    values the category counts return. Binned drift methods, data quality and the
    performance metrics are exact; ks and wasserstein are read off the quantile grid with
    statisticErrorBound in status; anderson, cvm and energy, rocAuc, estimated performance
    and confidence bounds need every value and are refused. Runs on PostgreSQL and DuckDB
    (tested), Trino, Spark SQL, BigQuery and Snowflake (compile-checked only). On
    reference.source (PostgreSQL and DuckDB): the reference profile is fitted from
    aggregates too (the same bin edges, counts, moments and quartiles; a 1000-step
    quantile grid in place of the sorted values, so ks and wasserstein carry the bound of
    both grids); it needs current.source.sql.pushdown (or engine) and refuses
    drift.learnThreshold."""


PromAggregate = Literal["mean", "min", "max", "last"]


class PrometheusQuery(ApiModel):
    """One operational figure: a PromQL expression that yields a single number."""

    cel = (
        CelRule(rule="!has(self.min) || !has(self.max) || self.min <= self.max",
                message="min must not exceed max", fieldPath=".min"),
        CelRule(rule="!has(self.step) || has(self.range)",
                message="step needs range", fieldPath=".step"),
    )

    name: Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9_]*$", max_length=63)]
    """Name of the figure in status and metrics, e.g. latencyP95Seconds."""
    query: Annotated[str, Field(min_length=1, max_length=8192)]
    """PromQL. It must return a scalar or exactly one series (aggregate with sum, max, ...)."""
    range: Duration | None = None
    """Unset: one instant query at the end of the window. Set: a range query over this
    long before the end of the window, reduced to one number by aggregate."""
    step: Duration | None = None
    """Resolution of the range query; default range/60, at least 1s."""
    aggregate: PromAggregate = "mean"
    """How the values of a range query become one figure: mean, min, max or last."""
    min: float | None = None
    """The figure is a finding when below this."""
    max: float | None = None
    """The figure is a finding when above this."""
    severity: Severity = "warning"
    """Severity of the finding when the figure is out of bounds."""

    @model_validator(mode="after")
    def _bounds(self) -> PrometheusQuery:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min: must not exceed max")
        if self.step is not None and self.range is None:
            raise ValueError("step: needs range")
        return self


class PrometheusSource(ApiModel):
    """Operational figures (latency, error rate, throughput) queried from Prometheus."""

    cel = (CelRule(rule="self.queries.all(q, self.queries.exists_one(p, p.name == q.name))",
                   message="query names must be unique", fieldPath=".queries"),)

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://")]
    """Base URL of the Prometheus HTTP API, e.g. http://prometheus-operated.monitoring:9090."""
    queries: Annotated[list[PrometheusQuery], Field(min_length=1, max_length=64)]
    """The figures to query."""
    bearer_token_secret_ref: SecretKeyRef | None = None
    """A Secret key holding a bearer token sent as Authorization (e.g. behind an auth proxy)."""
    timeout: Duration = "30s"
    """Time limit of each query."""

    @model_validator(mode="after")
    def _unique(self) -> PrometheusSource:
        twice = _repeated([q.name for q in self.queries])
        if twice:
            raise ValueError(f"queries: names must be unique; repeated: {', '.join(twice)}")
        return self


ConfigMapFormat = Literal["csv", "json", "jsonl"]


class ConfigMapSource(ApiModel):
    """A small dataset inline in a ConfigMap of the monitor's namespace (demos, tiny
    references; a ConfigMap holds at most 1 MiB)."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the ConfigMap."""
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
    """Key in the ConfigMap's data (or binaryData)."""
    format: ConfigMapFormat | None = None
    """csv, json (a list of records or an object of columns) or jsonl; by default taken
    from the key's suffix."""


SOURCE_KINDS = ("url", "sql", "prometheus", "configMap")


class Source(ApiModel):
    """Where a dataset comes from. Exactly one kind of source is set."""

    cel = (
        CelRule(rule="[has(self.url), has(self.sql), has(self.prometheus), "
                     "has(self.configMap)].filter(x, x).size() == 1",
                message="set exactly one kind of source: url, sql, prometheus or configMap"),
        # prunePartitions has a default, which the apiserver fills in before CEL runs:
        # only true counts as set.
        CelRule(rule="has(self.url) || (!has(self.format) && !has(self.credentialsSecretRef)"
                     " && !(has(self.prunePartitions) && self.prunePartitions)"
                     " && !has(self.timeout))",
                message="format, credentialsSecretRef, prunePartitions and timeout go with "
                        "url"),
        CelRule(rule="!has(self.prunePartitions) || !self.prunePartitions || "
                     "(has(self.url) && self.url.endsWith('/'))",
                message="prunePartitions needs a url ending in '/' (a prefix)",
                fieldPath=".prunePartitions"),
        CelRule(rule="!has(self.timeout) || " + cel_longer_than_zero("self.timeout"),
                message="timeout must be longer than 0s", fieldPath=".timeout"),
        CelRule(rule="!has(self.engine) || (has(self.url) && "
                     "(has(self.format) ? self.format == 'parquet' : "
                     "(self.url.endsWith('/') || self.url.endsWith('.parquet'))))",
                message="engine goes with a url of parquet files (a .parquet file, a prefix "
                        "ending in '/', or format: parquet)",
                fieldPath=".engine"),
        CelRule(rule="!has(self.url) || self.url.matches('"
                     + URL_PATTERN.replace("\\", "\\\\") + "')",
                message=URL_MESSAGE, fieldPath=".url"),
    )

    url: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    """A file or, ending in '/', every csv, parquet or jsonl file under a prefix: a local
    path (a mounted volume) or file://, http(s)://, s3:// (s3a://) or gs:// (gcs://); no
    other scheme. Relative paths are resolved against the directory of the monitor file
    (modelmon check) or the operator's working directory. The operator reads local files
    only under the directories its administrator allows (modelmon run --allow-local-path)."""
    max_bytes: ByteCount | None = None
    """The most bytes this source may bring in (every file of a prefix together): a number
    or a quantity like 64Mi. More fails the check with InvalidData. Default, and upper
    bound: the operator's --max-source-bytes (64Mi unless the administrator changed it)."""
    format: DataFormat | None = None
    """File format; by default taken from the suffix (.csv, .parquet, .jsonl)."""
    credentials_secret_ref: SecretRef | None = None
    """s3:// and gs:// credentials. S3 keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    optional AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL. GCS key: service-account.json.
    Unset: the pod's own identity (IRSA, Workload Identity, instance metadata)."""
    prune_partitions: bool = False
    """For a prefix: read only the date partitions (path segments date=, dt=, day= or ds=
    holding YYYY-MM-DD or YYYYMMDD, and hour=HH below them) that overlap current.window."""
    timeout: Duration | None = None
    """For http(s)://, s3:// and gs:// urls: the longest wait to connect to the server and
    for each request to it (default 60s). A slower server fails the check with
    SourceUnavailable (retried like other network trouble)."""
    engine: UrlEngine | None = None
    """For a url of parquet files, in current.source only: duckdb aggregates the window
    in an embedded DuckDB, streamed from the files batch by batch, instead of loading it:
    a window larger than memory is scored as current.source.sql.pushdown scores it
    (binned drift methods, data quality and the performance metrics exact; ks and
    wasserstein from a quantile grid with statisticErrorBound; anderson, cvm, energy,
    rocAuc, estimated performance and confidence bounds refused). The files are read as
    url reads them (allowed local paths, egress, credentials, maxBytes per pass);
    DuckDB itself opens no file and no connection."""
    sql: SqlSource | None = None
    """Rows from a SQL query."""
    prometheus: PrometheusSource | None = None
    """Operational figures from Prometheus (only in spec.operational.source)."""
    config_map: ConfigMapSource | None = None
    """A small dataset in a ConfigMap."""

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        kinds = [k for k in SOURCE_KINDS if getattr(self, _ATTR[k]) is not None]
        if len(kinds) != 1:
            raise ValueError("set exactly one kind of source: url, sql, prometheus or "
                             f"configMap (got {', '.join(kinds) or 'none'})")
        if self.url is None and (self.format is not None
                                 or self.credentials_secret_ref is not None
                                 or self.prune_partitions or self.timeout is not None):
            raise ValueError("format, credentialsSecretRef, prunePartitions and timeout go "
                             "with url")
        if self.prune_partitions and not (self.url or "").endswith("/"):
            raise ValueError("prunePartitions: needs a url ending in '/' (a prefix)")
        if self.timeout is not None and parse_duration(self.timeout).total_seconds() <= 0:
            raise ValueError("timeout: must be longer than 0s")
        if self.url is not None and not _URL.match(self.url):
            scheme = self.url.split(":", 1)[0]
            raise ValueError(f"url: scheme {scheme!r} is not supported; {URL_MESSAGE}")
        if self.engine is not None:
            url = self.url or ""
            fmt = self.format or ("parquet" if url.endswith(("/", ".parquet")) else None)
            if self.url is None or fmt not in ENGINE_FORMATS:
                raise ValueError(f"engine: {self.engine} reads a url of parquet files (a "
                                 ".parquet file, a prefix ending in '/', or format: parquet)")
        if self.max_bytes is not None:
            try:
                parse_bytes(self.max_bytes)
            except ValueError as exc:
                raise ValueError(f"maxBytes: {exc}") from None
        return self

    @property
    def kind(self) -> str:
        """The name of the kind of source that is set."""
        return next(k for k in SOURCE_KINDS if getattr(self, _ATTR[k]) is not None)


_ATTR = {"url": "url", "sql": "sql", "prometheus": "prometheus", "configMap": "config_map"}


class ReferenceSpec(ApiModel):
    """The data the model was trained or validated on: the baseline for drift."""

    source: Source
    """Where the reference data comes from."""


class CurrentSpec(ApiModel):
    """The production window each check compares with the reference."""

    cel = (CelRule(rule="!has(self.window) || " + cel_longer_than_zero("self.window"),
                   message="window must be longer than 0s", fieldPath=".window"),)

    source: Source
    """Where the production data comes from."""
    window: Duration | None = None
    """Only rows whose timestamp column falls in the last `window` before the check are
    used; needs columns.timestamp. Unset: every row the source returns."""
    min_rows: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    """Rows the current window (and the reference) must hold for a verdict; with fewer
    the check gives no verdict: Ready=False with reason InsufficientData, and phase Pending
    (or the last Drifting/Degraded verdict), never Healthy. Default 30: the chi-square and
    Z-tests of the auto rule need expected counts of at least 5 per category, which 30 rows
    give for up to six categories. Set it lower (at least 1) for deliberately tiny
    windows, or higher where a window is normally large."""

    @model_validator(mode="after")
    def _positive_window(self) -> CurrentSpec:
        if self.window is not None and parse_duration(self.window).total_seconds() <= 0:
            raise ValueError("window: must be longer than 0s")
        return self


#: The most classes columns.classProbabilities may list.
MAX_CLASSES = 100
#: A class label (a key of columns.classProbabilities; control characters are refused by
#: ``Columns``, which names the field rather than the label).
ClassLabel = Annotated[str, Field(min_length=1, max_length=253)]


class Columns(ApiModel):
    """Which columns play which role. Column names are case-sensitive."""

    cel = (CelRule(rule="!has(self.features) || !has(self.exclude) || "
                        "self.features.all(f, !(f in self.exclude))",
                   message="a column cannot be both in features and in exclude",
                   fieldPath=".exclude"),
           CelRule(rule="!has(self.classProbabilities) || !has(self.predictionProbability)",
                   message="classProbabilities and predictionProbability are mutually "
                           "exclusive: set predictionProbability for a binary classifier's "
                           "positive class, or classProbabilities with one column per class",
                   fieldPath=".classProbabilities"),
           CelRule(rule="!has(self.classProbabilities) || self.classProbabilities.all(k, "
                        "size(k) >= 1 && size(k) <= 253 && "
                        f"k.matches(r'{NO_CONTROLS_PATTERN}'))",
                   message="classProbabilities keys are class labels of 1 to 253 "
                           "characters without control characters",
                   fieldPath=".classProbabilities"),
           CelRule(rule="!has(self.classProbabilities) || self.classProbabilities.all(k, "
                        "self.classProbabilities.all(j, j == k || "
                        "self.classProbabilities[j] != self.classProbabilities[k]))",
                   message="classProbabilities: each class needs its own column",
                   fieldPath=".classProbabilities"))

    prediction: ColumnName | None = None
    """The model's output: the predicted label (classification) or value (regression)."""
    prediction_probability: ColumnName | None = None
    """Binary classification: the predicted probability of the positive class; needed for
    rocAuc, logLoss and brier."""
    class_probabilities: Annotated[dict[ClassLabel, ColumnName],
                                   Field(min_length=2, max_length=MAX_CLASSES)] | None = None
    """Classification with one probability column per class: class label to column name
    (2 to 100 classes; list every class, as each row's probabilities are divided by their
    sum when it is not 1). Gives the confidence figures (spec.confidence); the columns are
    not monitored as features. Not with predictionProbability."""
    target: ColumnName | None = None
    """The ground-truth label or value, when the data has it; enables performance metrics
    and target drift."""
    timestamp: ColumnName | None = None
    """Event time of each row; needed for current.window."""
    features: Annotated[list[ColumnName], Field(max_length=2000)] | None = None
    """Feature columns to monitor; default: every column that has no other role and is not
    excluded."""
    categorical: Annotated[list[ColumnName], Field(max_length=2000)] = []
    """Columns to treat as categorical even when their values are numbers; non-numeric
    columns are categorical anyway."""
    exclude: Annotated[list[ColumnName], Field(max_length=2000)] = []
    """Columns never monitored (identifiers, free text)."""
    positive_label: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    """Binary classification: the label of the positive class, compared as text. Default:
    1 (or true) when the labels are 0/1 or booleans."""

    @model_validator(mode="after")
    def _disjoint(self) -> Columns:
        both = sorted(set(self.features or ()) & set(self.exclude))
        if both:
            raise ValueError(
                f"exclude: {', '.join(both)} cannot be both in features and in exclude")
        classes = self.class_probabilities
        if classes is not None and self.prediction_probability is not None:
            raise ValueError("classProbabilities: classProbabilities and predictionProbability "
                             "are mutually exclusive; set predictionProbability for a binary "
                             "classifier's positive class, or classProbabilities with one "
                             "column per class")
        controlled = [i + 1 for i, label in enumerate(classes or {})
                      if any(ord(ch) in CONTROL_CHARACTERS for ch in label)]
        if controlled:
            raise ValueError(f"classProbabilities: class labels must not contain control "
                             f"characters (C0/C1 controls, DEL, Unicode bidirectional "
                             f"controls); label number {controlled[0]} does")
        shared = _repeated(list((classes or {}).values()))
        if shared:
            raise ValueError(f"classProbabilities: each class needs its own column; "
                             f"{', '.join(shared)} is given to more than one class")
        return self

    def roles(self) -> dict[str, str]:
        """Column name -> role, for the columns that have one."""
        named = {"prediction": self.prediction,
                 "predictionProbability": self.prediction_probability,
                 "target": self.target, "timestamp": self.timestamp}
        roles = dict.fromkeys((self.class_probabilities or {}).values(), "classProbabilities")
        return {**roles, **{col: role for role, col in named.items() if col is not None}}


class FeatureDrift(ApiModel):
    """Per-column override of the drift method and threshold."""

    cel = (_p_value_threshold_rule(),)

    method: DriftMethodName | None = None
    """Drift method for this column; it must apply to the column's kind. Default: the
    method of its kind (spec.drift.numericMethod or categoricalMethod, then method)."""
    threshold: Annotated[float, Field(ge=0.0, le=1e6)] | None = None
    """Threshold for this column: p-value for tests, distance for distances."""
    severity: Severity | None = None
    """When set, drift in this column alone is a finding with this severity."""

    @model_validator(mode="after")
    def _p_value(self) -> FeatureDrift:
        _check_p_value_threshold(self.method, self.threshold)
        return self


class EffectFloor(ApiModel):
    """The smallest effect a test's rejection must come with to count as drift."""

    numeric: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02
    """For ks, cvm and anderson: the KS distance, the largest gap between the two
    empirical CDFs. 0.02: a mean shift of 0.05 standard deviations of a normal column;
    below it a shift is negligible however many rows prove it."""
    categorical: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02
    """For chisquare and ztest: Cramer's V of the reference-against-window table (for two
    categories, about the change in a category's share divided by 2 sqrt(p(1-p)): 0.02 is
    one percentage point around a 50 % share)."""


class LearnedThreshold(ApiModel):
    """Learn each distance column's threshold from the reference itself.

    The reference's rows are split into chunks of the current window's row count (in a
    fixed random order, so the same reference and window size always learn the same
    threshold; the fitted reference keeps its values sorted, not in their original order),
    each chunk is scored against the rest of the reference with the column's method, and
    the threshold is mean + multiple x standard deviation of those chunk distances: how far
    a window of this size drawn from the reference itself lies, plus a margin. Tests
    (p-value methods) are not affected. A feature's own threshold
    (features.<name>.threshold) wins over the learned one; the learned one replaces
    spec.drift.threshold and the method's default. Needs at least 10 chunks (a reference
    of 10 x the window's rows); with fewer, or when every chunk distance is 0, the fixed
    threshold applies and the column's message says why. 50 chunks are scored (from further
    random orders when the reference makes fewer).
    """

    enabled: bool = False
    """Learn the thresholds of distance columns (wasserstein, energy, psi, jensenshannon,
    kl, hellinger, tvd)."""
    multiple: Annotated[float, Field(gt=0.0, le=100.0)] = 3.0
    """Standard deviations of the chunk distances above their mean. 3: a window from the
    reference's own distribution crosses it for about 1 % of windows, at most 5 % with an
    unlucky draw of chunks (measured for every distance method at 200 and 1000 rows;
    distances are skewed to the right, so more often than a normal tail's 0.13 %), while a
    mean shift of 0.3 standard deviations crosses it at 1000 rows."""
    chunk_rows: Annotated[int, Field(ge=2, le=100_000_000)] | None = None
    """Rows per chunk. Default: the current window's row count, rounded to the nearest of
    8 sizes per doubling (within 5 %), so windows of slightly varying size share one
    learned threshold (the fitted reference keeps it; a new size costs one computation)."""
    minimum: Annotated[float, Field(ge=0.0, le=1e6)] | None = None
    """A floor under the learned threshold, in the statistic's units: learned thresholds
    shrink as windows grow (about 1/sqrt(rows)), so with very large windows a shift too
    small to matter would drift without one."""


class DriftSpec(ApiModel):
    """Data drift: is the current window distributed like the reference?

    The method of a column: its own (``features.<name>.method``), else the method of its
    kind (``numericMethod`` or ``categoricalMethod``), else ``method`` when that applies to
    the kind, else ``auto``.
    """

    cel = (CelRule(rule=f"!has(self.threshold) || self.threshold <= 1.0 || "
                        f"!({_drift_uses_test_cel()})",
                   message="a test's threshold is a p-value: set it in [0, 1]",
                   fieldPath=".threshold"),
           CelRule(rule=f"!has(self.features) || !({_drift_uses_test_cel()}) || "
                        "self.features.all(c, !has(self.features[c].threshold) || "
                        "self.features[c].threshold <= 1.0 || has(self.features[c].method))",
                   message="a feature without its own method may be scored by a test of "
                           "spec.drift (method, numericMethod or categoricalMethod): its "
                           "threshold is a p-value, set it in [0, 1]",
                   fieldPath=".features"))

    method: DriftMethodOrAuto = "auto"
    """Drift method for every column of a kind it applies to (numeric or categorical, see
    numericMethod and categoricalMethod); the columns of the other kind use auto. auto: for
    up to 1000 reference rows, ks for numeric columns with more than 5 distinct values and
    chisquare (ztest for two categories) otherwise, except tied numeric columns (distinct
    values at most half the values): cvm, or, when one value holds over 25% of them or they
    pile up at one end, chisquare over at most 50 values (else ks); above 1000 rows,
    wasserstein and jensenshannon."""
    numeric_method: NumericDriftMethodOrAuto | None = None
    """Drift method for numeric columns (numbers, not in columns.categorical), before
    method: anderson, cvm, energy, hellinger, jensenshannon, kl, ks, psi, wasserstein or
    auto. Default: method when it applies to numeric columns, else auto."""
    categorical_method: CategoricalDriftMethodOrAuto | None = None
    """Drift method for categorical columns (text, booleans, columns.categorical, a
    classifier's prediction and target, and numeric columns that auto scores as categories),
    before method: chisquare, hellinger, jensenshannon, psi, tvd, ztest or auto. Default:
    method when it applies to categorical columns, else auto."""
    threshold: Annotated[float, Field(ge=0.0, le=1e6)] | None = None
    """Threshold for every feature: for tests (ks, chisquare, ztest, anderson, cvm) a
    p-value below which a column drifts; for distances a value at or above which it drifts.
    Default: each method's own."""
    dataset_drift_share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    """Dataset drift when at least this share of the features drifted."""
    severity: Severity = "warning"
    """Severity of the dataset-drift, prediction-drift and target-drift findings."""
    min_effect: EffectFloor = EffectFloor()
    """A test's column drifts only when it rejects AND its effect size reaches this floor:
    with a million rows a side every test rejects a shift too small to matter. 0 turns the
    floor off for that kind."""
    correction: Correction = "none"
    """Multiple-testing correction of the features' p-values before they are held against
    their thresholds: none, bonferroni (family-wise error) or fdr (Benjamini-Hochberg false
    discovery rate), across the features a test scored (distances are not adjusted). none
    by default: each feature is judged at its own threshold, the rate the dataset-drift
    share is meant to count; with many features whose own findings or alerts matter, fdr
    keeps a chance rejection from firing on every check. Adjusted p-values are in status."""
    learn_threshold: LearnedThreshold = LearnedThreshold()
    """Distance columns (wasserstein, energy, psi, jensenshannon, kl, hellinger, tvd):
    learn the threshold from the reference instead of a fixed one. Chunks of the window's
    row count are scored against the rest of the reference; the threshold is mean +
    multiple x std of their distances. A feature's own threshold (features.<name>.threshold)
    wins; the learned one replaces spec.drift.threshold and the method's default. With a
    reference of fewer than 10 chunks the fixed threshold applies and the column's message
    says so. status.drift.features[].thresholdSource says which threshold was used."""
    features: Annotated[dict[ColumnName, FeatureDrift], Field(max_length=MAX_COLUMN_OVERRIDES)] = {}
    """Per-column overrides, by column name."""

    def kind_method(self, kind: str) -> str:
        """The method (or auto) of the columns of ``kind`` (numeric, categorical) that have
        no method of their own."""
        own = self.numeric_method if kind == "numeric" else self.categorical_method
        if own is not None:
            return own
        return self.method if self.method in KIND_METHODS[kind] else "auto"

    def _inherited_test(self) -> tuple[str, str | None] | None:
        """A test that a column without its own method may be scored by, and the kind
        field that chose it (None: ``method``); None when there is none."""
        for kind, field in KIND_FIELDS.items():
            method = self.kind_method(kind)
            if method in P_VALUE_METHODS:
                own = self.numeric_method if kind == "numeric" else self.categorical_method
                return method, (field if own is not None else None)
        return None

    @model_validator(mode="after")
    def _p_value(self) -> DriftSpec:
        test, chosen_by = self._inherited_test() or (None, None)
        _check_p_value_threshold(test, self.threshold, chosen_by)
        for name, override in self.features.items():
            if override.method is None:
                try:
                    _check_p_value_threshold(test, override.threshold, chosen_by)
                except ValueError as exc:
                    raise ValueError(f"features.{name}.{exc}") from None
        return self


class MetricBound(ApiModel):
    """A performance metric and the range it must stay in."""

    cel = (
        CelRule(rule="has(self.min) || has(self.max)", message="set min, max or both"),
        CelRule(rule="!has(self.min) || !has(self.max) || self.min <= self.max",
                message="min must not be above max", fieldPath=".min"),
    )

    name: MetricName
    """Metric, with scikit-learn's definition. binaryClassification: accuracy, precision,
    recall, f1, rocAuc, logLoss, brier; multiclassClassification: accuracy, precisionMacro,
    recallMacro, f1Macro, precisionWeighted, recallWeighted, f1Weighted; regression: mae,
    rmse, mape, r2."""
    min: Annotated[float, Field(ge=-1e12, le=1e12)] | None = None
    """The metric must be at least this."""
    max: Annotated[float, Field(ge=-1e12, le=1e12)] | None = None
    """The metric must be at most this."""
    severity: Severity = "warning"
    """Severity of the finding when the metric leaves its range."""

    @model_validator(mode="after")
    def _range(self) -> MetricBound:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min: {self.min} must not be above max {self.max}")
        return self


class EstimatedPerformanceSpec(ApiModel):
    """Performance estimated from the current window without its labels (CBPE for a
    classifier's probabilities, DLE for a regression), fitted on the labelled reference."""

    cel = (CelRule(rule="self.metrics.all(m, self.metrics.exists_one(o, o.name == m.name))",
                   message="each metric may be listed once", fieldPath=".metrics"),)

    metrics: Annotated[list[MetricBound], Field(max_length=32)] = []
    """Estimated metrics with bounds. binaryClassification: accuracy, precision, recall, f1,
    rocAuc (needs columns.predictionProbability); multiclassClassification: accuracy,
    precisionMacro, recallMacro, f1Macro, precisionWeighted, recallWeighted, f1Weighted,
    rocAuc (needs columns.classProbabilities); regression: mae, rmse (needs
    columns.prediction). All need columns.target in the reference. A bound is breached only
    when the estimate's whole sampling band is past it (min: the band's upper end below it;
    max: its lower end above it)."""

    @model_validator(mode="after")
    def _unique(self) -> EstimatedPerformanceSpec:
        dupes = _repeated([m.name for m in self.metrics])
        if dupes:
            raise ValueError(f"metrics: each metric may be listed once; repeated: {dupes}")
        return self


class PerformanceSpec(ApiModel):
    """Model performance, computed when the current window has the target column."""

    cel = (CelRule(rule="self.metrics.all(m, self.metrics.exists_one(o, o.name == m.name))",
                   message="each metric may be listed once", fieldPath=".metrics"),
           CelRule(rule="!has(self.maxLabelDelay) || "
                        + cel_longer_than_zero("self.maxLabelDelay"),
                   message="maxLabelDelay must be longer than 0s",
                   fieldPath=".maxLabelDelay"))

    metrics: Annotated[list[MetricBound], Field(max_length=32)] = []
    """Metrics with bounds. Listed metrics are computed and exported; a metric outside its
    bounds is a finding. A metric the window does not define (rocAuc with one class) is
    not checked: status.notChecked says why, and the other metrics are still judged."""
    max_label_delay: Duration | None = None
    """How long checks may find no labels (columns.target absent from the window, or every
    label missing) before that is a finding, performance.labelsMissing (alert
    ModelLabelsMissing). Unset: missing labels are reported (PerformanceDegraded Unknown,
    bounds listed in status.notChecked) but never a finding. Needs columns.target."""
    label_delay_severity: Severity = "warning"
    """Severity of the finding when labels are missing for longer than maxLabelDelay."""
    estimated: EstimatedPerformanceSpec = EstimatedPerformanceSpec()
    """Performance estimated without labels, with bounds (status.estimatedPerformance)."""

    @model_validator(mode="after")
    def _unique(self) -> PerformanceSpec:
        dupes = _repeated([m.name for m in self.metrics])
        if dupes:
            raise ValueError(f"metrics: each metric may be listed once; repeated: {dupes}")
        if (self.max_label_delay is not None
                and parse_duration(self.max_label_delay).total_seconds() <= 0):
            raise ValueError("maxLabelDelay: must be longer than 0s")
        return self


#: The top class probability below which a row counts as low-confidence, unless
#: spec.confidence.lowConfidenceShare.below says otherwise.
DEFAULT_LOW_CONFIDENCE = 0.6
_CONFIDENCE_RANGE_CEL = (
    CelRule(rule="has(self.min) || has(self.max)", message="set min, max or both"),
    CelRule(rule="!has(self.min) || !has(self.max) || self.min <= self.max",
            message="min must not be above max", fieldPath=".min"),
)


def _check_range(low: float | None, high: float | None) -> None:
    if low is None and high is None:
        raise ValueError("set min, max or both")
    if low is not None and high is not None and low > high:
        raise ValueError(f"min: {low} must not be above max {high}")


class ConfidenceBound(ApiModel):
    """The range a confidence figure (a probability or a share, from 0 to 1) must stay in."""

    cel = _CONFIDENCE_RANGE_CEL

    min: Fraction | None = None
    """The figure must be at least this (0 to 1)."""
    max: Fraction | None = None
    """The figure must be at most this (0 to 1)."""
    severity: Severity = "warning"
    """Severity of the finding when the figure leaves its range."""

    @model_validator(mode="after")
    def _range(self) -> ConfidenceBound:
        _check_range(self.min, self.max)
        return self


class LowConfidenceBound(ConfidenceBound):
    """The range the share of low-confidence rows must stay in, and what low means."""

    below: Annotated[float, Field(gt=0.0, le=1.0)] = DEFAULT_LOW_CONFIDENCE
    """A row is low-confidence when its top class probability is below this (0 excluded,
    up to 1; default 0.6). It also sets the cutoff of status.confidence.lowConfidenceShare."""


class ConfidenceSpec(ApiModel):
    """Bounds on how confident a classifier is, from its probabilities alone (no labels).

    The figures are computed for every classifier with probabilities
    (columns.predictionProbability for a binary one, columns.classProbabilities for one
    column per class) and reported in status.confidence whether or not bounds are set.
    """

    mean_confidence: ConfidenceBound | None = None
    """Bounds on the mean over the window's rows of the top class probability (binary:
    max(p, 1 - p))."""
    low_confidence_share: LowConfidenceBound | None = None
    """Bounds on the share of rows whose top class probability is below ``below``."""


class FractionBound(ApiModel):
    """An upper bound on a per-column fraction of rows."""

    max: Fraction
    """Largest acceptable fraction, from 0 to 1."""
    severity: Severity = "warning"
    """Severity of the finding when a column exceeds max."""


class CountBound(ApiModel):
    """An upper bound on a per-column count."""

    max: Annotated[int, Field(ge=0, le=1_000_000_000)]
    """Largest acceptable count."""
    severity: Severity = "warning"
    """Severity of the finding when a column exceeds max."""


class DataQualitySpec(ApiModel):
    """Per-column data-quality bounds, checked on every monitored column."""

    missing_fraction: FractionBound | None = None
    """Share of rows with a missing value (null, NaN)."""
    outlier_fraction: FractionBound | None = None
    """Numeric columns: share of rows outside the reference's 1.5 x IQR fences."""
    out_of_range_fraction: FractionBound | None = None
    """Numeric columns: share of rows below the reference's minimum or above its maximum."""
    new_categories: CountBound | None = None
    """Categorical columns: number of distinct values never seen in the reference."""


LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
#: Alert labels modelmon sets itself; alerting.labels may not override them.
RESERVED_ALERT_LABELS = ("alertname", "severity", "namespace", "monitor", "model")


class PrometheusRuleSpec(ApiModel):
    """The PrometheusRule the operator generates for this monitor."""

    enabled: bool = True
    """Generate a PrometheusRule (needs the prometheus-operator CRDs in the cluster)."""
    cel = (CelRule(rule="!has(self.labels) || self.labels.all(k, size(k) <= 317 && "
                        f"k.matches(r'{K8S_LABEL_KEY_PATTERN}'))",
                   message="prometheusRule.labels keys must be Kubernetes label keys",
                   fieldPath=".labels"),)

    labels: Annotated[dict[str, Annotated[str, Field(max_length=63,
                                                     pattern=K8S_LABEL_VALUE_PATTERN)]],
                      Field(max_length=32)] = {}
    """Labels on the PrometheusRule object, e.g. release: kube-prometheus-stack, so that
    Prometheus's ruleSelector picks it up (Kubernetes label keys and values)."""
    for_: Duration = Field(default="10m", alias="for")
    """How long a condition must hold before its alert fires."""
    runbook_url: Annotated[str, Field(max_length=2048, pattern=r"^https?://")] | None = None
    """Link added to every alert as the runbook_url annotation."""

    @model_validator(mode="after")
    def _k8s_labels(self) -> PrometheusRuleSpec:
        for key, value in self.labels.items():
            problem = k8s_label_problem(key, value)
            if problem:
                raise ValueError(f"labels: {problem}")
        return self


HttpUrl = Annotated[str, Field(pattern=r"^https?://", max_length=2048)]


class SlackNotifier(ApiModel):
    """A Slack incoming webhook."""

    webhook_secret_ref: SecretKeyRef
    """Secret key holding the incoming-webhook URL (the URL is the credential)."""
    channel: Annotated[str, Field(max_length=80)] | None = None
    """Channel override, e.g. #ml-alerts (only for webhooks that allow it)."""


class PagerDutyNotifier(ApiModel):
    """PagerDuty Events API v2: one incident per monitor, triggered and resolved."""

    routing_key_secret_ref: SecretKeyRef
    """Secret key holding the integration's routing key."""
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    """Events API endpoint (change it for a proxy or a regional endpoint)."""


class WebhookNotifier(ApiModel):
    """A JSON POST to any HTTP endpoint."""

    url: HttpUrl
    """Endpoint that receives the JSON body."""
    hmac_secret_ref: SecretKeyRef | None = None
    """Secret key used to sign the body: header X-Modelmon-Signature: sha256=<hex HMAC>."""


class SmtpServer(ApiModel):
    """The SMTP server that relays email."""

    host: Annotated[str, Field(min_length=1, max_length=253)]
    """Server host name."""
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    """Server port."""
    start_tls: bool = True
    """Upgrade the connection with STARTTLS before authenticating (required unless false)."""
    ca_secret_ref: SecretKeyRef | None = None
    """Secret key holding a PEM CA bundle to verify the server with, instead of the system's."""
    username_secret_ref: SecretKeyRef | None = None
    """Secret key holding the user name, when the server needs authentication."""
    password_secret_ref: SecretKeyRef | None = None
    """Secret key holding the password."""


class EmailNotifier(ApiModel):
    """Email through an SMTP server."""

    smtp: SmtpServer
    """The relay."""
    from_: Annotated[str, Field(min_length=3, max_length=320)] = Field(alias="from")
    """Sender address."""
    recipients: Annotated[list[Annotated[str, Field(min_length=3, max_length=320)]],
                          Field(min_length=1, max_length=50, alias="to")]
    """Recipient addresses."""


class AlertmanagerNotifier(ApiModel):
    """Push alerts to an Alertmanager (POST /api/v2/alerts), with the labels of the
    PrometheusRule's alerts, for clusters where Prometheus does not evaluate the rules."""

    url: HttpUrl
    """Alertmanager base URL, e.g. http://alertmanager-operated.monitoring:9093."""


NOTIFIER_KINDS = ("slack", "pagerduty", "webhook", "email", "alertmanager")


class Notifier(ApiModel):
    """One destination. Exactly one kind is set."""

    cel = (CelRule(rule="[" + ", ".join(f"has(self.{k})" for k in NOTIFIER_KINDS)
                   + "].filter(x, x).size() == 1",
                   message="set exactly one kind of notifier: " + ", ".join(NOTIFIER_KINDS)),)

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)] | None \
        = None
    """Name used in status.notifications; default: the kind and its position, e.g. slack-0."""
    min_severity: Severity = "warning"
    """Only findings of at least this severity reach this notifier."""
    slack: SlackNotifier | None = None
    """Slack incoming webhook."""
    pagerduty: PagerDutyNotifier | None = None
    """PagerDuty Events API v2."""
    webhook: WebhookNotifier | None = None
    """Generic JSON webhook."""
    email: EmailNotifier | None = None
    """Email over SMTP."""
    alertmanager: AlertmanagerNotifier | None = None
    """Alertmanager push."""

    @model_validator(mode="after")
    def _one_kind(self) -> Notifier:
        if len(self.kinds()) != 1:
            raise ValueError("set exactly one kind of notifier: " + ", ".join(NOTIFIER_KINDS))
        return self

    def kinds(self) -> list[str]:
        """The kinds that are set."""
        return [k for k in NOTIFIER_KINDS if getattr(self, k) is not None]

    @property
    def kind(self) -> str:
        return self.kinds()[0]


class AlertingSpec(ApiModel):
    """How problems reach people."""

    cel = (
        CelRule(rule="!has(self.labels) || self.labels.all(k, k.matches('"
                     + LABEL_NAME_PATTERN + "'))",
                message="alerting.labels keys must be Prometheus label names "
                        "([a-zA-Z_][a-zA-Z0-9_]*)", fieldPath=".labels"),
        CelRule(rule="!has(self.labels) || !self.labels.exists(k, k in "
                     f"{list(RESERVED_ALERT_LABELS)!r})",
                message="alerting.labels may not set " + ", ".join(RESERVED_ALERT_LABELS)
                        + "; modelmon sets them", fieldPath=".labels"),
        CelRule(rule="!has(self.notifiers) || self.notifiers.all(n, !has(n.name) || "
                     "self.notifiers.exists_one(o, has(o.name) && o.name == n.name))",
                message="notifier names must be unique", fieldPath=".notifiers"),
    )

    labels: Annotated[dict[str, Annotated[str, Field(max_length=256), NoControls()]],
                      Field(max_length=32)] = {}
    """Routing labels added to every alert of this monitor (team, service, ...), for
    Alertmanager routes (Prometheus label names; values without control characters)."""
    prometheus_rule: PrometheusRuleSpec = PrometheusRuleSpec()
    """The generated PrometheusRule."""
    notifiers: Annotated[list[Notifier], Field(max_length=16)] = []
    """Destinations modelmon notifies directly, besides the PrometheusRule."""
    repeat_interval: Duration = "4h"
    """While a finding lasts, notify again after this long (like Alertmanager's
    repeat_interval)."""
    dashboard_url: HttpUrl | None = None
    """Link included in notifications (a dashboard, a notebook, a runbook)."""

    @model_validator(mode="after")
    def _labels(self) -> AlertingSpec:
        bad = [k for k in self.labels if not re.fullmatch(LABEL_NAME_PATTERN, k)]
        if bad:
            raise ValueError(f"labels: {', '.join(bad)} are not Prometheus label names "
                             "([a-zA-Z_][a-zA-Z0-9_]*)")
        reserved = [k for k in self.labels if k in RESERVED_ALERT_LABELS]
        if reserved:
            raise ValueError(f"labels: may not set {', '.join(reserved)}; modelmon sets them")
        names = [notifier_name(n, i) for i, n in enumerate(self.notifiers)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"notifiers: names must be unique; repeated: {', '.join(dupes)}")
        return self


def notifier_name(notifier: Notifier, index: int) -> str:
    """A notifier's name in status: its own, or kind-index."""
    return notifier.name or f"{notifier.kind}-{index}"


class RetrainingWhen(ApiModel):
    """When to retrain."""

    cel = (CelRule(rule="self.drift || self.performance",
                   message="enable drift, performance or both"),)

    drift: bool = True
    """Dataset or prediction drift findings count."""
    performance: bool = True
    """Performance findings count."""
    consecutive_checks: Annotated[int, Field(ge=1, le=1000)] = 3
    """The condition must hold for this many consecutive checks."""

    @model_validator(mode="after")
    def _something(self) -> RetrainingWhen:
        if not (self.drift or self.performance):
            raise ValueError("enable drift, performance or both")
        return self


class JobTemplate(ApiModel):
    """A batch/v1 JobTemplateSpec; the apiserver validates the Job when it is created."""

    metadata: dict[str, Any] | None = None
    """Labels and annotations for the Job."""
    spec: dict[str, Any]
    """A batch/v1 JobSpec (template, backoffLimit, ...)."""

    @model_validator(mode="after")
    def _template(self) -> JobTemplate:
        if not isinstance(self.spec.get("template"), dict):
            raise ValueError("spec: needs template (a pod template)")
        return self


class RetrainingSpec(ApiModel):
    """Start a Job (owned by the monitor) when the model needs retraining."""

    when: RetrainingWhen = RetrainingWhen()
    """The condition."""
    job_template: JobTemplate
    """The Job to create: metadata (labels, annotations) and spec."""
    cooldown: Duration = "24h"
    """No new Job within this long after the last one started."""


class OperationalSpec(ApiModel):
    """Operational figures (latency, error rate, throughput), evaluated against their
    bounds like every other figure."""

    cel = (CelRule(rule="has(self.source.prometheus)",
                   message="operational.source must be a prometheus source",
                   fieldPath=".source"),)

    source: Source
    """A prometheus source with its queries."""

    @model_validator(mode="after")
    def _prometheus(self) -> OperationalSpec:
        if self.source.prometheus is None:
            raise ValueError("source: must be a prometheus source")
        return self


def _suit_task(metrics: str, allowed: Mapping[str, Sequence[str]]) -> str:
    """A CEL condition: every metric of the list at ``metrics`` is one ``allowed`` for the
    monitor's model.task."""
    return (f"{metrics}.all(m, "
            + " || ".join(f"(self.model.task == '{task}' && m.name in {list(names)!r})"
                          for task, names in allowed.items())
            + ")")


class ModelMonitorSpec(ApiModel):
    """What to monitor and how. GitOps owns the spec; the operator never writes it."""

    cel = (
        CelRule(
            rule="!has(self.performance) || !has(self.performance.metrics) || "
                 + _suit_task("self.performance.metrics", TASK_METRICS),
            message="every performance metric must suit model.task (binaryClassification: "
                    "accuracy, precision, recall, f1, rocAuc, logLoss, brier; "
                    "multiclassClassification: accuracy, precisionMacro, recallMacro, f1Macro, "
                    "precisionWeighted, recallWeighted, f1Weighted; regression: mae, rmse, "
                    "mape, r2)",
            fieldPath=".performance.metrics"),
        CelRule(rule="!has(self.performance) || !has(self.performance.metrics) || "
                     "size(self.performance.metrics) == 0 || "
                     "(has(self.columns) && has(self.columns.target))",
                message="performance.metrics needs columns.target",
                fieldPath=".performance.metrics"),
        CelRule(rule="!has(self.performance) || !has(self.performance.maxLabelDelay) || "
                     "(has(self.columns) && has(self.columns.target))",
                message="performance.maxLabelDelay needs columns.target",
                fieldPath=".performance.maxLabelDelay"),
        CelRule(rule="!has(self.performance) || !has(self.performance.metrics) || "
                     "!self.performance.metrics.exists(m, m.name in "
                     f"{list(SCORE_METRICS)!r}) || "
                     "(has(self.columns) && has(self.columns.predictionProbability))",
                message=f"{', '.join(SCORE_METRICS)} need columns.predictionProbability",
                fieldPath=".performance.metrics"),
        CelRule(rule="!has(self.current.source.sql) || "
                     "!self.current.source.sql.query.contains(':window_') || "
                     "has(self.current.window)",
                message="a query that uses :window_start or :window_end needs current.window",
                fieldPath=".current.window"),
        CelRule(rule="!has(self.reference.source.sql) || "
                     "!self.reference.source.sql.query.contains(':window_')",
                message="the reference query cannot use :window_start or :window_end",
                fieldPath=".reference.source.sql.query"),
        CelRule(rule="!has(self.reference.source.prometheus) && "
                     "!has(self.current.source.prometheus)",
                message="prometheus sources give operational figures: use them in "
                        "operational.source, not in reference or current",
                fieldPath=".current.source"),
        CelRule(rule="!has(self.current.window) || "
                     "(has(self.columns) && has(self.columns.timestamp))",
                message="current.window needs columns.timestamp", fieldPath=".current.window"),
        CelRule(rule="!has(self.columns) || !has(self.columns.classProbabilities) || "
                     "self.model.task != 'regression'",
                message="columns.classProbabilities needs a classifier (model.task "
                        "binaryClassification or multiclassClassification)",
                fieldPath=".columns.classProbabilities"),
        CelRule(
            rule="!has(self.performance) || !has(self.performance.estimated) || "
                 "!has(self.performance.estimated.metrics) || "
                 + _suit_task("self.performance.estimated.metrics", ESTIMATED_METRICS),
            message="every estimated metric must suit model.task (binaryClassification: "
                    "accuracy, precision, recall, f1, rocAuc; multiclassClassification: "
                    "accuracy, precisionMacro, recallMacro, f1Macro, precisionWeighted, "
                    "recallWeighted, f1Weighted, rocAuc; regression: mae, rmse)",
            fieldPath=".performance.estimated.metrics"),
        CelRule(rule="!has(self.performance) || !has(self.performance.estimated) || "
                     "!has(self.performance.estimated.metrics) || "
                     "size(self.performance.estimated.metrics) == 0 || "
                     "(has(self.columns) && has(self.columns.target) && ("
                     "(self.model.task == 'binaryClassification' && "
                     "has(self.columns.predictionProbability)) || "
                     "(self.model.task == 'multiclassClassification' && "
                     "has(self.columns.classProbabilities)) || "
                     "(self.model.task == 'regression' && has(self.columns.prediction))))",
                message="performance.estimated.metrics needs columns.target (the reference's "
                        "labels) and columns.predictionProbability (binaryClassification), "
                        "columns.classProbabilities (multiclassClassification) or "
                        "columns.prediction (regression)",
                fieldPath=".performance.estimated.metrics"),
        CelRule(rule="!has(self.confidence) || (!has(self.confidence.meanConfidence) && "
                     "!has(self.confidence.lowConfidenceShare)) || (has(self.columns) && "
                     "(has(self.columns.classProbabilities) || "
                     "(self.model.task == 'binaryClassification' && "
                     "has(self.columns.predictionProbability))))",
                message="confidence bounds need probabilities: columns.predictionProbability "
                        "(binaryClassification) or columns.classProbabilities (one column "
                        "per class)",
                fieldPath=".confidence"),
        CelRule(rule=f"!({_PUSHDOWN_CEL}) || !has(self.drift) || ("
                     f"(!has(self.drift.method) || !(self.drift.method in {_EXACT_ONLY_CEL})) "
                     "&& (!has(self.drift.numericMethod) || "
                     f"!(self.drift.numericMethod in {_EXACT_ONLY_CEL})) "
                     "&& (!has(self.drift.features) || self.drift.features.all(c, "
                     "!has(self.drift.features[c].method) || "
                     f"!(self.drift.features[c].method in {_EXACT_ONLY_CEL}))))",
                message="current.source.sql.pushdown (or engine) reads aggregates: drift "
                        f"methods {', '.join(EXACT_ONLY_METHODS)} need every value; use ks, "
                        "wasserstein or a binned method (psi, jensenshannon, kl, hellinger)",
                fieldPath=".drift"),
        CelRule(rule=f"!({_PUSHDOWN_CEL}) || !has(self.performance) || "
                     "((!has(self.performance.metrics) || !self.performance.metrics.exists("
                     f"m, m.name in {list(EXACT_ONLY_METRICS)!r})) && "
                     "(!has(self.performance.estimated) || "
                     "!has(self.performance.estimated.metrics) || "
                     "size(self.performance.estimated.metrics) == 0))",
                message="current.source.sql.pushdown (or engine) reads aggregates: rocAuc "
                        "and performance.estimated need every row; remove them or turn "
                        "pushdown off (remove engine)",
                fieldPath=".performance"),
        CelRule(rule=f"!({_PUSHDOWN_CEL}) || !has(self.confidence) || "
                     "(!has(self.confidence.meanConfidence) && "
                     "!has(self.confidence.lowConfidenceShare))",
                message="current.source.sql.pushdown (or engine) reads aggregates: "
                        "confidence bounds need every probability; remove them or turn "
                        "pushdown off (remove engine)",
                fieldPath=".confidence"),
        CelRule(rule=f"!({_REFERENCE_PUSHDOWN_CEL}) || {_PUSHDOWN_CEL}",
                message=REFERENCE_PUSHDOWN_NEEDS_WINDOW,
                fieldPath=".reference.source.sql.pushdown"),
        CelRule(rule=f"!({_REFERENCE_PUSHDOWN_CEL}) || !has(self.drift) || "
                     "!has(self.drift.learnThreshold) || "
                     "!has(self.drift.learnThreshold.enabled) || "
                     "!self.drift.learnThreshold.enabled",
                message=REFERENCE_PUSHDOWN_NO_LEARNING,
                fieldPath=".drift.learnThreshold"),
        CelRule(rule="!has(self.reference.source.engine)",
                message="engine applies to current.source; the reference is fitted from its "
                        "rows",
                fieldPath=".reference.source.engine"),
    )

    model: ModelRef
    """The model this monitor watches."""
    schedule: Schedule = Schedule()
    """When checks run."""
    reference: ReferenceSpec
    """The baseline data."""
    current: CurrentSpec
    """The production window."""
    columns: Columns = Columns()
    """Column roles."""
    drift: DriftSpec = DriftSpec()
    """Data, prediction and target drift."""
    performance: PerformanceSpec = PerformanceSpec()
    """Performance metrics and their bounds."""
    confidence: ConfidenceSpec = ConfidenceSpec()
    """Bounds on the classifier's confidence (from its probabilities, no labels needed)."""
    data_quality: DataQualitySpec = DataQualitySpec()
    """Data-quality bounds."""
    alerting: AlertingSpec = AlertingSpec()
    """Alert routing labels, the generated PrometheusRule and direct notifiers."""
    operational: OperationalSpec | None = None
    """Operational figures from Prometheus, with bounds."""
    retraining: RetrainingSpec | None = None
    """Retraining hook: a Job started when drift or performance findings persist."""

    @model_validator(mode="after")
    def _cross_field(self) -> ModelMonitorSpec:
        allowed = TASK_METRICS[self.model.task]
        wrong = [m.name for m in self.performance.metrics if m.name not in allowed]
        if wrong:
            raise ValueError(
                f"performance.metrics: {', '.join(wrong)} do not suit task "
                f"{self.model.task}; use {', '.join(allowed)}")
        if self.performance.metrics and self.columns.target is None:
            raise ValueError("performance.metrics: needs columns.target")
        if self.performance.max_label_delay is not None and self.columns.target is None:
            raise ValueError("performance.maxLabelDelay: needs columns.target")
        scored = [m.name for m in self.performance.metrics if m.name in SCORE_METRICS]
        if scored and self.columns.prediction_probability is None:
            raise ValueError(f"performance.metrics: {', '.join(scored)} need "
                             "columns.predictionProbability")
        cur_sql = self.current.source.sql
        if cur_sql is not None and ":window_" in cur_sql.query and self.current.window is None:
            raise ValueError("current.window: a query that uses :window_start or :window_end "
                             "needs current.window")
        ref_sql = self.reference.source.sql
        if ref_sql is not None and ":window_" in ref_sql.query:
            raise ValueError("reference.source.sql.query: cannot use :window_start or "
                             ":window_end")
        for role, src in (("reference", self.reference.source),
                          ("current", self.current.source)):
            if src.prometheus is not None:
                raise ValueError(f"{role}.source: prometheus sources give operational "
                                 "figures: use them in operational.source")
        if self.current.window is not None and self.columns.timestamp is None:
            raise ValueError("current.window: needs columns.timestamp")
        if self.columns.class_probabilities is not None and self.model.task == "regression":
            raise ValueError("columns.classProbabilities: needs a classifier (model.task "
                             "binaryClassification or multiclassClassification)")
        self._estimation_inputs()
        bounded = (self.confidence.mean_confidence is not None
                   or self.confidence.low_confidence_share is not None)
        if bounded and self.probabilities() is None:
            raise ValueError("confidence: bounds need probabilities: "
                             "columns.predictionProbability (binaryClassification) or "
                             "columns.classProbabilities (one column per class)")
        self._pushdown(bounded)
        return self

    def pushdown(self) -> bool:
        """Whether the current window is read as aggregates (current.source.sql.pushdown,
        or a url source's current.source.engine)."""
        return self.pushdown_field() is not None

    def pushdown_field(self) -> str | None:
        """The field that makes the current window aggregates, for messages; None when it
        is read as rows."""
        source = self.current.source
        if source.sql is not None and source.sql.pushdown:
            return "current.source.sql.pushdown"
        if source.engine is not None:
            return "current.source.engine"
        return None

    def _pushdown(self, bounded: bool) -> None:
        """What sql.pushdown cannot compute from aggregates is refused, naming the field."""
        if self.reference.source.sql is not None and self.reference.source.sql.pushdown:
            if self.pushdown_field() is None:
                raise ValueError("reference.source.sql.pushdown: "
                                 + REFERENCE_PUSHDOWN_NEEDS_WINDOW)
            if self.drift.learn_threshold.enabled:
                raise ValueError("drift.learnThreshold: " + REFERENCE_PUSHDOWN_NO_LEARNING)
        if self.reference.source.engine is not None:
            raise ValueError("reference.source.engine: applies to current.source; the "
                             "reference is fitted from its rows")
        pushed = self.pushdown_field()
        if pushed is None:
            return
        off = "turn pushdown off" if pushed.endswith("pushdown") else "remove engine"
        why = (pushed + " reads aggregates: {what} need(s) every value; {fix}")
        drift = self.drift
        methods = {"drift.method": drift.method, "drift.numericMethod": drift.numeric_method,
                   **{f"drift.features.{name}.method": f.method
                      for name, f in drift.features.items()}}
        for field_, method in methods.items():
            if method in EXACT_ONLY_METHODS:
                raise ValueError(f"{field_}: " + why.format(
                    what=method, fix="use ks, wasserstein or a binned method (psi, "
                                     "jensenshannon, kl, hellinger), or " + off))
        exact = [m.name for m in self.performance.metrics if m.name in EXACT_ONLY_METRICS]
        if exact:
            raise ValueError("performance.metrics: " + why.format(
                what=", ".join(exact), fix="remove it or " + off))
        if self.performance.estimated.metrics:
            raise ValueError("performance.estimated.metrics: " + why.format(
                what="estimated performance", fix="remove it or " + off))
        if bounded:
            raise ValueError("confidence: " + why.format(
                what="confidence bounds", fix="remove them or " + off))

    def _estimation_inputs(self) -> None:
        """performance.estimated.metrics: names that suit the task, and the columns the
        estimator needs."""
        estimated = self.performance.estimated.metrics
        if not estimated:
            return
        task = self.model.task
        allowed = ESTIMATED_METRICS[task]
        wrong = [m.name for m in estimated if m.name not in allowed]
        if wrong:
            raise ValueError(
                f"performance.estimated.metrics: {', '.join(wrong)} cannot be estimated for "
                f"task {task}; use {', '.join(allowed)}")
        cols = self.columns
        given = {"binaryClassification": cols.prediction_probability,
                 "multiclassClassification": cols.class_probabilities,
                 "regression": cols.prediction}[task]
        if given is None:
            raise ValueError(f"performance.estimated.metrics: needs {ESTIMATION_INPUTS[task]} "
                             f"for task {task}")
        if cols.target is None:
            raise ValueError("performance.estimated.metrics: needs columns.target, the "
                             "reference's labels the estimator is fitted on")

    def probabilities(self) -> str | dict[str, str] | None:
        """The columns confidence is computed from: the positive-class probability of a
        binary classifier, the class-to-column map of columns.classProbabilities, or None
        (no probabilities, or a regression)."""
        if self.model.task == "regression":
            return None
        if self.columns.class_probabilities is not None:
            return dict(self.columns.class_probabilities)
        if self.model.task == "binaryClassification":
            return self.columns.prediction_probability
        return None


class ObjectMeta(BaseModel):
    """The part of Kubernetes object metadata modelmon reads."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str | None = None
    generation: int | None = None
    uid: str | None = None


class ModelMonitor(BaseModel):
    """A ModelMonitor document as users write it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    api_version: Literal["modelmon.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ModelMonitor"]
    metadata: ObjectMeta
    spec: ModelMonitorSpec
    status: dict[str, Any] | None = None
