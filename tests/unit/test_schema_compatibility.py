"""Each schema stays BACKWARD compatible with every released version kept in schemas/released/.

BACKWARD: a consumer using the current schema can read data written with any earlier
released schema. Checked with the official `avro` package's compatibility checker.
"""

import json
from pathlib import Path

import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import parse

from schemas.codec import SCHEMA_DIR, SCHEMA_NAMES

RELEASED = Path(SCHEMA_DIR).parent / "released"
PAIRS = [(name, old) for name in SCHEMA_NAMES for old in sorted((RELEASED / name).glob("v*.avsc"))]


def _compatible(reader_text: str, writer_text: str) -> bool:
    result = ReaderWriterCompatibilityChecker().get_compatibility(parse(reader_text), parse(writer_text))
    return result.compatibility is SchemaCompatibilityType.compatible


def test_schema_compatibility__every_schema_has_a_released_version():
    assert {name for name, _ in PAIRS} == set(SCHEMA_NAMES)


@pytest.mark.parametrize("name, released", PAIRS, ids=[f"{n}-{p.stem}" for n, p in PAIRS])
def test_schema_compatibility__current_reads_released(name, released):
    assert _compatible((SCHEMA_DIR / f"{name}.avsc").read_text(), released.read_text())


def test_schema_compatibility__checker_catches_a_new_required_field():
    # The check above can fail: adding a field without a default breaks BACKWARD compatibility.
    old = (RELEASED / "Request" / "v1.avsc").read_text()
    new = json.loads(old)
    new["fields"].append({"name": "priority", "type": "int"})
    assert not _compatible(json.dumps(new), old)
