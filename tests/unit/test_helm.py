"""The Helm chart (deploy/helm/rendezvous), checked without a cluster: `helm lint`, `helm template`,
every rendered manifest validated against the Kubernetes schemas (kubernetes-validate, bundled
with the pip package) and the ScaledObjects against KEDA's own CRD schema (from KEDA's Go module,
pinned by SHA-256), and the manifests name the probes, the lag trigger and the demo spec's topics."""

from __future__ import annotations

import hashlib
import io
import subprocess
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import require

ROOT = Path(__file__).parents[2]
CHART = ROOT / "deploy" / "helm" / "rendezvous"
KUBERNETES = "1.33"
KEDA = ("v2.21.1", "872fa4b9d4282969ece753727ca31a7a31eaf341a52fa0972148297521ca9a75")


def _helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    helm = require("helm", "the chart is linted and rendered (.ci/run builds helm.sh/helm/v4 from the Go proxy)")
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=check)


@pytest.fixture(scope="module")
def values(tmp_path_factory):
    """Values for the demo's spec (its two model groups), as a user writes them."""
    from pipelines.jobs.train import train_demo_models

    spec = yaml.safe_load(train_demo_models(tmp_path_factory.mktemp("demo"), n_train=300).read_text())
    for model in spec["models"]:
        model["artifact"] = f"/models/{Path(model['artifact']).name}"
        model.pop("training_data", None)
    spec["partitions"] = 6
    groups = sorted({m["group"] for m in spec["models"]})
    path = tmp_path_factory.mktemp("values") / "values.yaml"
    path.write_text(yaml.safe_dump({
        "pipeline": {"spec": spec},
        "store": {"url": "s3://models/rendezvous", "endpoint": "http://minio:9000", "existingSecret": "store-keys"},
        "broker": {"url": "kafka://kafka-0.kafka:9092;kafka-1.kafka:9092", "securityProtocol": "SASL_SSL",
                   "saslMechanism": "SCRAM-SHA-512", "existingSecret": "kafka-user"},
        "tokens": {"value": "acme:" + "0" * 64},
        "groups": [{"name": g, "minReplicas": 1, "maxReplicas": 6, "lagThreshold": 200,
                    "resources": {"requests": {"cpu": "250m"}}} for g in groups],
    }))
    return path, spec, groups


def _render(values_path: Path, *extra: str) -> list[dict]:
    out = _helm("template", "demo", str(CHART), "-f", str(values_path), *extra).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _keda_schema() -> dict:
    from streams.kafka.broker.jars import cache_dir

    version, sha = KEDA
    cached = cache_dir() / "keda" / f"keda-{version}.zip"
    if not cached.exists() or hashlib.sha256(cached.read_bytes()).hexdigest() != sha:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(f"https://proxy.golang.org/github.com/kedacore/keda/v2/@v/{version}.zip",
                                    timeout=120) as response:
            data = response.read()
        assert hashlib.sha256(data).hexdigest() == sha, "KEDA's module zip does not match its pinned SHA-256"
        cached.write_bytes(data)
    with zipfile.ZipFile(io.BytesIO(cached.read_bytes())) as archive:
        crd = yaml.safe_load(archive.read(f"github.com/kedacore/keda/v2@{version}/config/crd/bases/"
                                          "keda.sh_scaledobjects.yaml"))
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return served["schema"]["openAPIV3Schema"]


def test_helm__lint_passes():
    result = _helm("lint", str(CHART), "--strict", "--set", "store.url=s3://bucket/prefix", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm__rendered_manifests_are_valid_kubernetes_and_keda(values):
    import jsonschema
    import kubernetes_validate

    docs = _render(values[0])
    keda = _keda_schema()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("ScaledObject") == len(values[2]) and "Job" in kinds and "ConfigMap" in kinds
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(doc, keda)
        else:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    # the validators bite: a misspelt field is refused by each
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**deployment, "spec": {**deployment["spec"], "replica": 2}}, KUBERNETES, strict=True)
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scaled, "spec": {**scaled["spec"], "triggers": [{"metadata": {}}]}}, keda)


def test_helm__manifests_name_the_probes_the_lag_trigger_and_the_specs_topics(values):
    path, spec, groups = values
    docs = _render(path)
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    name = spec["pipeline"]
    core = by[("Deployment", "demo-rendezvous-core")]["spec"]["template"]["spec"]["containers"][0]
    assert core["readinessProbe"]["httpGet"]["path"] == "/v1/health/ready"
    assert core["livenessProbe"]["httpGet"]["path"] == "/v1/health/live"
    assert core["securityContext"]["runAsNonRoot"] and core["args"][-2:] == ["--role", "core"]
    env = {e["name"]: e for e in core["env"]}
    assert env["RDV_STORE"]["value"] == "s3://models/rendezvous" and env["AWS_ENDPOINT_URL"]["value"] == "http://minio:9000"
    assert env["RDV_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "kafka-user", "key": "password"}
    assert env["RDV_TOKENS"]["valueFrom"]["secretKeyRef"]["name"] == "demo-rendezvous-tokens"
    assert ("Secret", "demo-rendezvous-tokens") in by and ("Secret", "demo-rendezvous-broker") not in by
    mounted = yaml.safe_load(by[("ConfigMap", "demo-rendezvous-spec")]["data"]["pipeline.yaml"])
    assert mounted == spec  # the very spec: its pipeline's topics are the ones the triggers name
    init = by[("Job", "demo-rendezvous-init")]["spec"]["template"]["spec"]["containers"][0]
    assert init["args"] == ["rendezvous", "init", "/etc/rendezvous/pipeline.yaml"]
    for group in groups:
        deployment = by[("Deployment", f"demo-rendezvous-group-{group}")]["spec"]["template"]["spec"]
        container = deployment["containers"][0]
        assert container["args"][-2:] == ["--role", f"group:{group}"]
        assert container["readinessProbe"]["httpGet"] == {"path": "/v1/health/ready", "port": "probes"}
        assert {"name": "RDV_PROBE_PORT", "value": "8081"} in container["env"]
        scaled = by[("ScaledObject", f"demo-rendezvous-group-{group}")]["spec"]
        [trigger] = scaled["triggers"]
        assert trigger["type"] == "kafka" and trigger["metadata"]["topic"] == f"{name}.requests"
        assert trigger["metadata"]["consumerGroup"] == f"rdv-{name}-group-{group}"  # the group's Faust app id
        assert trigger["metadata"]["bootstrapServers"] == "kafka-0.kafka:9092,kafka-1.kafka:9092"
        assert scaled["maxReplicaCount"] <= mounted["partitions"] and trigger["metadata"]["allowIdleConsumers"] == "false"
        assert ("PodDisruptionBudget", f"demo-rendezvous-group-{group}") in by
    from streams.kafka.topics import PipelineTopics

    assert PipelineTopics(name).app_id(f"group:{groups[0]}") == f"rdv-{name}-group-{groups[0]}"


def test_helm__refuses_what_cannot_work_and_says_why(values):
    no_store = _helm("template", "demo", str(CHART), "-f", str(values[0]), "--set", "store.url=", check=False)
    assert no_store.returncode != 0 and "store.url is required" in no_store.stderr
    too_many = _helm("template", "demo", str(CHART), "-f", str(values[0]), "--set", "pipeline.spec.partitions=2",
                     check=False)
    assert too_many.returncode != 0 and "exceeds the spec's partitions (2)" in too_many.stderr
