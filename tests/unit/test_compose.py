"""docker-compose.yml is for users (no Docker engine here): check its structure against our CLI."""

from pathlib import Path

import yaml
from click.testing import CliRunner

from streams.cli import main
from streams.kafka.settings import Settings

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OTHERS = {"kafka", "prometheus", "grafana", "kafka-ui"}  # not ours


def test_compose__kafka_is_official_image_in_kraft_mode():
    kafka = COMPOSE["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


def test_compose__worker_commands_exist_in_our_cli():
    workers = {n: s for n, s in COMPOSE["services"].items() if n not in OTHERS}
    assert {"core", "group-boosted", "group-linear", "quality"} <= set(workers)
    for name, service in workers.items():
        command = service["command"]
        assert command[0] == "rendezvous" and command[1] in main.commands, name
        result = CliRunner().invoke(main, [command[1], "--help"])
        assert result.exit_code == 0, result.output
        for option in (c for c in command[2:] if c.startswith("--")):
            assert option in result.output, (name, option)


def test_compose__env_variables_are_ones_we_read():
    known = {f"RDV_{f.upper()}" for f in Settings.__dataclass_fields__}
    for name, service in COMPOSE["services"].items():
        if name in OTHERS:
            continue
        assert set(service["environment"]) <= known, name


def test_compose__prometheus_scrapes_the_core_and_grafana_gets_the_dashboard():
    services = COMPOSE["services"]
    mounted = {v.split(":")[0]: v.split(":")[1] for name in ("prometheus", "grafana") for v in services[name]["volumes"]}
    for source in mounted:
        assert (ROOT / source).exists(), source
    scrape = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    [target] = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in services and services[host]["command"][-1] == "core"
    assert f"{port}:{port}" in services[host]["ports"]
    assert services["core"]["environment"]["RDV_WEB_HOST"] == "0.0.0.0"
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/rendezvous.yml").read_text())
    assert mounted["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]


def test_compose__kafka_ui_points_at_the_internal_listener():
    ui = COMPOSE["services"]["kafka-ui"]
    assert ui["image"].startswith("ghcr.io/kafbat/kafka-ui:")
    internal = COMPOSE["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")[0]
    assert ui["environment"]["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == internal.split("://")[1]


def _stages(text: str) -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continuation lines joined."""
    import re

    joined = re.sub(r"\\\n\s*", " ", text)
    stages: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        stages[-1].append((word.upper(), rest.strip()))
    return stages


def test_dockerfile__slim_non_root_from_a_wheel_with_a_healthcheck():
    build, runtime = _stages((ROOT / "Dockerfile").read_text())
    assert build[0] == ("FROM", "python:3.11-slim AS wheel") and runtime[0][1] == "python:3.11-slim"
    assert any(i == "RUN" and "pip wheel" in a and "--no-deps" in a for i, a in build)
    # the runtime stage copies the wheel only, never the source tree, and installs it (no editable install)
    copies = [a for i, a in runtime if i == "COPY"]
    assert copies == ["--from=wheel /wheels /wheels"]
    assert any(i == "RUN" and "pip install" in a and "/wheels/*.whl" in a and "-e " not in a for i, a in runtime)
    [user] = [a for i, a in runtime if i == "USER"]
    assert user not in ("root", "0") and not user.startswith("0:")
    [check] = [a for i, a in runtime if i == "HEALTHCHECK"]
    assert check.endswith('CMD ["rendezvous", "probe"]')
    assert "probe" in main.commands and "--ready" in CliRunner().invoke(main, ["probe", "--help"]).output
    env = dict(pair.split("=", 1) for i, a in runtime if i == "ENV" for pair in a.split())
    assert set(f for f in env if f.startswith("RDV_")) <= {f"RDV_{f.upper()}" for f in Settings.__dataclass_fields__}
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data"} <= set(ignored)


def test_dockerfile__the_wheel_it_installs_builds_and_holds_the_package_data(tmp_path):
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("rendezvous-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("streams/cli.py", "streams/kafka/broker/kafka-4.1.1.lock", "streams/kafka/broker/log4j2.properties",
                   "schemas/avro/Request.avsc", "agents/quality.py", "pipelines/jobs/lifecycle.py"):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "data/")) for n in names)


def test_compose__one_image_init_first_and_readiness_before_what_needs_the_core():
    services = COMPOSE["services"]
    ours = {n: s for n, s in services.items() if n not in OTHERS}
    assert {s["image"] for s in ours.values()} == {"rendezvous:local"}
    assert all(s["build"]["dockerfile"] == "Dockerfile" for s in ours.values())
    assert services["init"]["command"][:2] == ["rendezvous", "init"]
    assert services["init"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in ("core", "group-boosted", "group-linear"):
        assert ours[name]["depends_on"] == {"init": {"condition": "service_completed_successfully"}}, name
        assert ours[name]["healthcheck"]["test"] == ["CMD", "rendezvous", "probe", "--ready"], name
    assert ours["quality"]["depends_on"] == {"core": {"condition": "service_healthy"}}
    assert services["prometheus"]["depends_on"] == {"core": {"condition": "service_healthy"}}
