"""The README opens with the two commands, and they are real: Makefile targets, CI calls one."""

import re
from pathlib import Path

from click.testing import CliRunner

from streams.cli import main

ROOT = Path(__file__).parents[2]


def test_readme__opens_with_the_two_commands_that_exist():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme__every_rendezvous_command_in_the_table_exists():
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"\| `rendezvous (\w+)", readme))
    assert named and named <= set(main.commands)
    for command in named:
        assert CliRunner().invoke(main, [command, "--help"]).exit_code == 0


def test_readme__every_setting_documented_is_one_we_read():
    from streams.kafka.settings import Settings

    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`(RDV_[A-Z_]+)`", readme)) - {"RDV_REQUIRE_ALL"}
    known = {f"RDV_{name.upper()}" for name in Settings.__dataclass_fields__}
    # variables read outside Settings: command-line options' envvar=, os.environ lookups
    source = "\n".join(p.read_text() for d in ("streams", "pipelines") for p in (ROOT / d).rglob("*.py"))
    read_elsewhere = set(re.findall(r"envvar=\"(RDV_[A-Z_]+)\"", source)) | set(
        re.findall(r"\b(?:environ|env)(?:\.get\(|\[)\"(RDV_[A-Z_]+)\"", source))
    assert documented <= known | read_elsewhere, documented - known - read_elsewhere
    assert known | read_elsewhere <= documented, f"undocumented settings: {(known | read_elsewhere) - documented}"
