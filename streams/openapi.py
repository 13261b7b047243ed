"""The OpenAPI 3.0 description of the core's REST API, served at ``GET /openapi.json``
(schemathesis runs against it in tests/integration/test_rest_api.py)."""

from __future__ import annotations

from typing import Any

from pipelines.spec import PipelineSpec
from schemas.codec import MAX_BYTES, field_names

__all__ = ["openapi", "unanswerable"]

_NUMERIC = ("sklearn", "xgboost")  # flavours that need every declared feature as a finite number


def unanswerable(features: dict[str, Any], spec: PipelineSpec) -> str | None:
    """Why no answering model can score ``features`` (a 422 naming the field), or None if one can.

    Models of other languages (flavour ``external``) and ones without declared features are
    assumed able to answer; the others need each declared feature present (and, for
    scikit-learn and XGBoost, a finite number).
    """
    problems = []
    for model_id in spec.ranking:
        model = spec.model(model_id)
        if model.flavour == "external" or not model.features:
            return None
        problem = None
        for name in model.features:
            value = features.get(name)
            if value is None:
                problem = f"feature '{name}' is missing"
            elif model.flavour in _NUMERIC and (isinstance(value, (bool, str))):
                problem = f"feature '{name}' is {value!r}, not a number"
            if problem:
                break
        if problem is None:
            return None
        problems.append((problem, model_id))
    if not problems:
        return None
    by_problem: dict[str, list[str]] = {}
    for problem, model_id in problems:
        by_problem.setdefault(problem, []).append(model_id)
    return "no model can answer: " + "; ".join(
        f"{problem}; {' and '.join(models)} need{'s' if len(models) == 1 else ''} it" for problem, models in by_problem.items())


def _features_schema(spec: PipelineSpec) -> dict:
    """Any JSON scalar per feature, and — when every answering model declares its features —
    what at least one of them needs (so a schema-valid request is one some model can answer)."""
    value = {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}], "nullable": True}
    schema = {"type": "object", "additionalProperties": value, "minProperties": 1,
              "example": {name: 1.0 for m in spec.models for name in m.features} or {"x": 1.0}}
    answering = [spec.model(model_id) for model_id in spec.ranking]
    if answering and all(m.flavour != "external" and m.features for m in answering):
        present = {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]}
        schema["anyOf"] = [{"required": list(m.features),
                            "properties": {f: {"type": "number"} if m.flavour in _NUMERIC else present
                                           for f in m.features}} for m in answering]
    return schema


# an Avro long: a value beyond 64 bits is refused (400, naming the field), so the description says so
_EPOCH_MS = {"type": "integer", "format": "int64", "minimum": -2**63, "maximum": 2**63 - 1, "nullable": True,
             "description": "epoch milliseconds at the producer"}


OPEN = ("/v1/health/live", "/v1/health/ready")  # probes: kubelets send no token


def openapi(spec: PipelineSpec, bearer: bool = False) -> dict:
    error = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    score = {"type": "object", "properties": {k: {} for k in field_names("Result", "scores")}}
    result = {
        "type": "object",
        "required": ["request_id", "status", "reason", "scores", "latency_ms"],
        "properties": {
            "request_id": {"type": "string"}, "prediction": {}, "probabilities": {"type": "object", "nullable": True},
            "model_id": {"type": "string", "nullable": True}, "model_version": {"type": "string", "nullable": True},
            "policy": {"type": "string"}, "reason": {"type": "string"},
            "scores": {"type": "array", "items": score}, "latency_ms": {"type": "number"},
            "status": {"type": "string", "enum": ["ok", "timeout", "error"]},
            "tenant": {"type": "string", "nullable": True}, "reply_to": {"type": "string", "nullable": True},
            "sent_at": _EPOCH_MS,
        },
    }
    request = {
        "type": "object", "required": ["features"], "additionalProperties": False,
        "properties": {
            "features": _features_schema(spec),
            "deadline_ms": {"type": "integer", "minimum": 1, "maximum": 60000, "nullable": True,
                            "description": f"default {spec.deadline_ms}"},
            "request_id": {"type": "string", "minLength": 1},
            "tenant": {"type": "string", "nullable": True},
            "reply_to": {"type": "string", "nullable": True},
            "sent_at": _EPOCH_MS,
        },
    }

    def json(schema: dict, description: str) -> dict:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    pipeline = {"name": "pipeline", "in": "path", "required": True, "schema": {"type": "string"},
                "example": spec.name}
    document = {
        "openapi": "3.0.3",
        "info": {"title": f"Rendezvous: pipeline {spec.name}", "version": "1"},
        "paths": {
            "/v1/{pipeline}/predict": {"post": {
                "summary": "Score features with every live model; the best answer within the deadline",
                "parameters": [pipeline],
                "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                "responses": {
                    "200": json(result, "answered"),
                    "400": json(error, "the body is not a valid request; the error names the field"),
                    "404": json(error, "no such pipeline here"),
                    "409": json(error, "this request_id was already used"),
                    "413": json(error, f"body larger than {MAX_BYTES['Request']} bytes"),
                    "422": json(error, "no live model can score these features; the error names the field"),
                    "502": json(result, "every model failed on this request"),
                    "504": {"description": "the deadline passed without an answer (a timeout Result, or no "
                                           "Result in time)", "content": {"application/json": {"schema": {}}}},
                },
            }},
            "/v1/health": {"get": {"summary": "ok, degraded or not ready, with the reasons; ranking, models, counters",
                                   "responses": {"200": json({"type": "object"}, "the worker's view")}}},
            "/v1/health/live": {"get": {"summary": "the process answers (liveness probe; no token)",
                                        "responses": {"200": json({"type": "object"}, "alive")}}},
            "/v1/health/ready": {"get": {
                "summary": "joined its consumer group, registry caught up (readiness probe; no token)",
                "responses": {"200": json({"type": "object"}, "ready"),
                              "503": json({"type": "object"}, "not ready: the reasons")}}},
            "/v1/{pipeline}/models": {"get": {
                "summary": "every model's score state", "parameters": [pipeline],
                "responses": {"200": json({"type": "object"}, "models"), "404": json(error, "no such pipeline here")}}},
            "/metrics": {"get": {"summary": "Prometheus text format",
                                 "responses": {"200": {"description": "metrics",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
    }
    if bearer:  # tokens are on: every REST call needs one (GET /metrics and this document do not)
        document["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
        for path, item in document["paths"].items():
            if path.startswith("/v1/") and path not in OPEN:
                for operation in item.values():
                    operation["security"] = [{"bearer": []}]
                    operation["responses"]["401"] = json(error, "missing or unknown bearer token")
                    operation["responses"]["403"] = json(error, "this tenant may not use this pipeline")
    return document
