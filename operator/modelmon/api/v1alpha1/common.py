"""Shared vocabulary of the v1alpha1 API: identity, enumerations, string formats, base model.

First stop on the data line (``api``); ``spec`` and ``status`` build on this module. It holds
the group, version and kind; the enumerations that registries elsewhere must match;
durations, byte counts, control characters and Kubernetes labels as CRD patterns with their
Python parsers and checks; and ``ApiModel``, the base of every spec and status object
(camelCase on the wire, field docstrings that become ``kubectl explain`` text, CEL rules for
the CRD generator).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic_core import core_schema

GROUP = "modelmon.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelMonitor"
PLURAL = "modelmonitors"
SINGULAR = "modelmonitor"
SHORT_NAMES = ("mm",)

# Enumerations that must equal a registry's keys (tests/unit/api checks both ways).
Task = Literal["binaryClassification", "multiclassClassification", "regression"]
DriftMethodName = Literal[
    "anderson", "chisquare", "cvm", "energy", "hellinger", "jensenshannon", "kl", "ks",
    "psi", "tvd", "wasserstein", "ztest",
]
DriftMethodOrAuto = Literal[
    "auto", "anderson", "chisquare", "cvm", "energy", "hellinger", "jensenshannon", "kl",
    "ks", "psi", "tvd", "wasserstein", "ztest",
]
#: The methods registered for numeric and for categorical columns (some are both), or auto.
NumericDriftMethodOrAuto = Literal[
    "auto", "anderson", "cvm", "energy", "hellinger", "jensenshannon", "kl", "ks", "psi",
    "wasserstein",
]
CategoricalDriftMethodOrAuto = Literal[
    "auto", "chisquare", "hellinger", "jensenshannon", "psi", "tvd", "ztest",
]
MetricName = Literal[
    "accuracy", "precision", "recall", "f1", "rocAuc", "logLoss", "brier",
    "precisionMacro", "recallMacro", "f1Macro",
    "precisionWeighted", "recallWeighted", "f1Weighted",
    "mae", "rmse", "mape", "r2",
]
DataFormat = Literal["csv", "parquet", "jsonl"]
Severity = Literal["warning", "critical"]
Correction = Literal["none", "bonferroni", "fdr"]
Phase = Literal["Pending", "Healthy", "Drifting", "Degraded", "Failing"]
FeatureKindName = Literal["numeric", "categorical"]
ConditionStatus = Literal["True", "False", "Unknown"]

#: A duration: parts like 30s, 10m, 1h30m (what CEL's duration() and Kubernetes accept:
#: whole or decimal numbers of ms, s, m, h) and whole days (d, 24h) and weeks (w, 7d).
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h)|[0-9]+(d|w))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0,
                 "w": 604800.0}
#: What a bad duration's message (CLI and apiserver alike) says about the units.
DURATION_UNITS = ("units: ms, s, m, h (whole or decimal numbers), d (days) and w (weeks) "
                  "(whole numbers); e.g. 30s, 10m, 1h30m, 7d or 2w")


def _cel_regex(pattern: str) -> str:
    """A regular expression as a single-quoted CEL string literal."""
    return "'" + pattern.replace("\\", "\\\\") + "'"


def cel_is_duration(field: str) -> str:
    """CEL: ``field`` (a string) is written like a duration."""
    return f"{field}.matches({_cel_regex(DURATION_PATTERN)})"


def cel_longer_than_zero(field: str) -> str:
    """CEL: the duration ``field`` is longer than 0s (a sum of parts is, when one of its
    numbers has a digit other than 0)."""
    return f"{field}.matches('[1-9]')"


def cel_at_least(field: str, bound: str) -> str:
    """CEL: the duration ``field`` (well formed) is at least ``bound`` (under a day).

    CEL's duration() knows neither d nor w, and findAll over parts costs more than the API
    server's budget allows, so: a part of whole days or weeks with a digit other than 0
    is a day or more; otherwise every d and w part is zero, and read as seconds they
    leave the sum unchanged.
    """
    return (f"{field}.matches('[1-9][0-9]*[dw]') || "
            f"duration({field}.replace('d', 's').replace('w', 's')) >= duration('{bound}')")


def _duration(text: str) -> str:
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration; {DURATION_UNITS}")
    return text


ColumnName = Annotated[str, Field(min_length=1, max_length=253)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


#: A byte count: a whole number, optionally with a Kubernetes quantity suffix (200Mi, 1G).
BYTES_PATTERN = r"^[0-9]{1,15}(Ki|Mi|Gi|Ti|k|M|G|T)?$"
_BYTE_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
               "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


class IntOrString:
    """Marker in ``Annotated`` metadata: the CRD field is ``x-kubernetes-int-or-string``,
    a positive integer or a string matching ``pattern``."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern


def parse_bytes(value: int | str) -> int:
    """Bytes of ``value``: an int, or a quantity like ``200Mi``; raises ValueError."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"{value} is not a positive number of bytes")
        return value
    match = re.fullmatch(BYTES_PATTERN, str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a byte count; write it like 268435456, 256Mi or "
                         "1Gi")
    number = int(str(value).strip().removesuffix(match.group(1) or ""))
    if number < 1:
        raise ValueError(f"{value!r} is not a positive number of bytes")
    return number * _BYTE_UNITS[match.group(1) or ""]


def format_bytes(count: int) -> str:
    """``count`` bytes for a message: ``268435456 (256 MiB)``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count} bytes ({count / size:.4g} {unit})"
    return f"{count} bytes"


ByteCount = Annotated[Annotated[int, Field(strict=True)] | str, IntOrString(BYTES_PATTERN)]


def parse_duration(text: str) -> timedelta:
    """The length of a duration such as ``1h30m`` or ``7d``; raises ValueError (naming the
    units) otherwise."""
    _duration(text)
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def prometheus_duration(text: str) -> str:
    """``text`` (a valid duration) as Prometheus writes durations: whole units from the
    largest down (``1d2h``, ``1500ms``), which it requires; ``2h1d`` or ``1.5h``, valid
    here, would be refused in a rule's ``for``."""
    milliseconds = round(parse_duration(text).total_seconds() * 1000)
    if milliseconds == 0:
        return "0s"
    out = []
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
                       ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


#: Characters no name or label a monitor sets may hold: C0 and C1 controls (NUL, newline
#: and DEL included) and the Unicode bidirectional controls that make text display in an
#: order other than the one it is stored in (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069).
#: They would reach Prometheus labels, alerts and notifications as they are.
CONTROL_CHARACTERS = frozenset(
    [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F),
     *range(0x2066, 0x206A)])
#: The same set as the CRD's pattern (Go RE2 syntax, which the API server uses).
NO_CONTROLS_PATTERN = (r"^[^\x00-\x1F\x7F-\x9F\x{200E}\x{200F}\x{202A}-\x{202E}"
                       r"\x{2066}-\x{2069}]*$")
#: A Kubernetes label value, and key (optional DNS-subdomain prefix and "/", then a name).
K8S_LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
K8S_LABEL_KEY_PATTERN = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                         r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def _no_controls(value: str) -> str:
    bad = next((i for i, ch in enumerate(value) if ord(ch) in CONTROL_CHARACTERS), None)
    if bad is not None:
        raise ValueError(f"must not contain control characters; U+{ord(value[bad]):04X} at "
                         f"character {bad + 1} (C0/C1 controls, DEL and Unicode "
                         "bidirectional controls are refused)")
    return value


class NoControls:
    """Annotation: the string holds no ``CONTROL_CHARACTERS`` (a pydantic check with a
    clear message; ``pattern`` is what the CRD generator writes for the API server)."""

    pattern = NO_CONTROLS_PATTERN

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_no_controls, handler(source))


def k8s_label_problem(key: str, value: str) -> str | None:
    """Why ``key: value`` is not a Kubernetes label (None: it is)."""
    prefix, slash, name = key.rpartition("/")
    if not re.fullmatch(K8S_LABEL_KEY_PATTERN.replace("{0,61}", "*"), key) \
            or len(name) > 63 or len(prefix) > 253 or (slash and not prefix):
        return (f"{key!r} is not a Kubernetes label key (an optional DNS prefix and '/', "
                "then at most 63 letters, digits, '-', '_', '.', starting and ending with a "
                "letter or digit)")
    if not re.fullmatch(K8S_LABEL_VALUE_PATTERN, value) or len(value) > 63:
        return (f"the value of {key} is not a Kubernetes label value (at most 63 letters, "
                "digits, '-', '_', '.', starting and ending with a letter or digit)")
    return None


class CelRule(BaseModel):
    """One ``x-kubernetes-validations`` entry."""

    rule: str
    message: str
    field_path: str | None = Field(default=None, alias="fieldPath")


class DurationFormat:
    """Annotation: a ``Duration`` string (a pydantic check whose message lists the units;
    ``cel`` is the same check as the CRD generator writes it for the API server)."""

    cel = CelRule(rule=cel_is_duration("self"),
                  message=f"must be a duration; {DURATION_UNITS}")

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_duration, handler(source))


Duration = Annotated[str, Field(max_length=32), DurationFormat()]


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
    )

    #: CEL rules the CRD generator attaches to this object's schema.
    cel: ClassVar[tuple[CelRule, ...]] = ()
