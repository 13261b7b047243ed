"""docker-compose.yml is for users (no Docker engine here): check its structure against our CLI."""

from pathlib import Path

import yaml
from click.testing import CliRunner

from streams.cli import main
from streams.settings import Settings

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())


def test_compose__kafka_is_official_image_in_kraft_mode():
    kafka = COMPOSE["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


def test_compose__worker_commands_exist_in_our_cli():
    workers = {n: s for n, s in COMPOSE["services"].items() if n != "kafka"}
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
        if name == "kafka":
            continue
        assert set(service["environment"]) <= known, name
