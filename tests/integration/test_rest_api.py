"""Schemathesis against the live REST API (its OpenAPI description at /openapi.json): generated
bodies, paths and parameters never get a server error — 5xx only as documented: a timeout Result
(504) when the deadline passes, which a generated deadline of a few milliseconds makes happen."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from hypothesis import HealthCheck, given, settings

from streams.testing import make_stack, ready_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rest_stack(broker, trained, tmp_path_factory):
    stack = make_stack(broker, trained, tmp_path_factory.mktemp("rest"), deadline_ms=2000)
    with stack:
        async def ready():
            client = await ready_client(stack)
            await client.__aexit__(None, None, None)

        asyncio.run(ready())
        yield stack


def test_rest_api__no_undocumented_server_error(rest_stack):
    """Every operation, generated cases (schemathesis's Hypothesis strategies; its pytest plugin
    does not run under pytest 9, so the cases are drawn here)."""
    base = f"http://127.0.0.1:{rest_stack.settings.web_port}"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 6
    seen: dict[str, set[int]] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            if case.path_parameters and "pipeline" in case.path_parameters and hash(str(case.body)) % 2:
                case.path_parameters["pipeline"] = rest_stack.spec.name  # half the cases on the real pipeline
            response = case.call(base_url=base, timeout=10)
            seen.setdefault(operation.label, set()).add(response.status_code)
            if response.status_code == 504:  # documented: the deadline passed; the body says so
                assert "deadline" in response.text, response.text
            else:
                assert response.status_code < 500, (operation.label, case.body, response.status_code, response.text)
            case.validate_response(response, excluded_checks=[not_a_server_error])  # 5xx judged above

        check()
    # the generated cases reached the pipeline, not only the 404 of a made-up name
    assert {200, 422} & seen["POST /v1/{pipeline}/predict"], seen


def test_rest_api__openapi_names_every_route_and_predict_validates_features(rest_stack):
    base = f"http://127.0.0.1:{rest_stack.settings.web_port}"
    described = httpx.get(f"{base}/openapi.json").json()
    assert set(described["paths"]) == {"/v1/{pipeline}/predict", "/v1/health", "/v1/health/live", "/v1/health/ready",
                                       "/v1/{pipeline}/models", "/metrics"}
    missing = httpx.post(f"{base}/v1/{rest_stack.spec.name}/predict", json={"features": {"x": 1.0}})
    assert missing.status_code == 422 and "feature 'salary' is missing; xgb and lr need it" in missing.json()["error"]
    features = described["paths"]["/v1/{pipeline}/predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]["properties"]["features"]["example"]
    first = httpx.post(f"{base}/v1/{rest_stack.spec.name}/predict", json={"features": features, "request_id": "once"})
    again = httpx.post(f"{base}/v1/{rest_stack.spec.name}/predict", json={"features": features, "request_id": "once"})
    assert first.status_code == 200 and again.status_code == 409 and "already used" in again.json()["error"]


def test_rest_api__tokens_bind_callers_to_tenants(broker, trained, tmp_path, run):
    from streams.auth import hash_token

    acme, beta = "rdv_acme_secret", "rdv_beta_secret"
    stack = make_stack(broker, trained, tmp_path, spec={"tenants": ["acme"]},
                       tokens=f"acme:{hash_token(acme)},beta:{hash_token(beta)}")
    base = f"http://127.0.0.1:{stack.settings.web_port}"
    predict, models = f"{base}/v1/{stack.spec.name}/predict", f"{base}/v1/{stack.spec.name}/models"
    with stack:
        run(_ready(stack))
        features = httpx.get(f"{base}/openapi.json").json()["paths"]["/v1/{pipeline}/predict"]["post"][
            "requestBody"]["content"]["application/json"]["schema"]["properties"]["features"]["example"]

        def call(method, url, token=None, **kwargs):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.request(method, url, headers=headers, timeout=10, **kwargs)

        anonymous = call("POST", predict, json={"features": features})
        forged = call("POST", predict, "rdv_guess", json={"features": features})
        other_tenant = call("POST", predict, beta, json={"features": features})
        other_models = call("GET", models, beta)
        impersonating = call("POST", predict, acme, json={"features": features, "tenant": "beta"})
        answered = call("POST", predict, acme, json={"features": features})
        own_models = call("GET", models, acme)
        health = call("GET", f"{base}/v1/health")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert "rendezvous token" in anonymous.json()["error"] and forged.status_code == 401
    assert other_tenant.status_code == 403 and other_models.status_code == 403
    assert "tenant 'beta' may not use" in other_tenant.json()["error"]
    assert impersonating.status_code == 403 and "belongs to tenant 'acme'" in impersonating.json()["error"]
    assert answered.status_code == 200 and answered.json()["tenant"] == "acme"
    assert own_models.status_code == 200 and health.status_code == 401


async def _ready(stack):
    client = await ready_client(stack)
    await client.__aexit__(None, None, None)
