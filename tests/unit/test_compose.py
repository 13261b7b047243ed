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
