"""The arguments of the ``metrics`` RPC service as Go's ``encoding/json`` reads them: keys matched
case-insensitively, and RoadRunner's "cannot unmarshal" texts for values of the wrong type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rrgrpc.metrics.collectors import MetricsRpcError


def arg_fields(arg: Any, what: str) -> dict[str, Any]:
    """A JSON object argument with keys matched case-insensitively, as Go's encoding/json does."""
    if not isinstance(arg, Mapping):
        raise MetricsRpcError(f"json: cannot unmarshal {type(arg).__name__} into Go value of type {what}")
    return {str(k).lower(): v for k, v in arg.items()}


def metric_arg(arg: Any) -> tuple[str, float, list[str]]:
    fields = arg_fields(arg, "metrics.Metric")
    value = fields.get("value") or 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MetricsRpcError(
            f"json: cannot unmarshal {type(value).__name__} into Go struct field Metric.value of type float64"
        )
    labels = fields.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise MetricsRpcError(
            "json: cannot unmarshal labels into Go struct field Metric.labels of type []string"
        )
    return str(fields.get("name") or ""), float(value), labels
