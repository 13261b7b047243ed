"""Encode and decode the contract's records: Avro single-object encoding or plain JSON.

Every record on a Rendezvous topic is either

* Avro **single-object encoding** (the Avro specification's): ``C3 01``, the schema's
  8-byte little-endian CRC-64-AVRO fingerprint, then the Avro binary body; or
* **plain JSON** (an object), so kcat, a shell or any language can take part.

Both are validated against the same ``.avsc`` schema, and a few rules Avro cannot say
(finite numbers, non-empty ids, a positive deadline) are checked on top. Anything that
fails raises :class:`DecodeError` whose ``reason`` names the field, ready for the DLQ.

>>> codec = codec_for("Feedback")
>>> codec.decode(codec.encode({"request_id": "r1", "label": 1}))["label"]
1
>>> codec.decode(b'{"request_id": "r1", "label": "fraud"}')["label"]
'fraud'
"""

from __future__ import annotations

import io
import json
import math
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

import fastavro
from fastavro.validation import validate as _avro_validate

__all__ = [
    "MAGIC",
    "MAX_BYTES",
    "SCHEMA_DIR",
    "SCHEMA_NAMES",
    "Codec",
    "DecodeError",
    "codec_for",
    "crc64_avro",
    "decode_scores",
    "field_names",
    "load_schema",
]

SCHEMA_DIR = Path(__file__).with_name("avro")
SCHEMA_NAMES = ("Request", "Score", "ScoreBatch", "Result", "Feedback", "Example", "Alert", "Quality", "ModelEvent",
                "DeadLetter")
MAGIC = b"\xc3\x01"
_HEADER = len(MAGIC) + 8
_MAX_DEADLINE_MS = 600_000


class DecodeError(ValueError):
    """The bytes are not a valid record of the expected type; ``reason`` says why."""

    def __init__(self, reason: str, stage: str = "decode") -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (0xC15D213AA4D7A795 & -(fp & 1))
        table.append(fp)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Avro specification's 64-bit Rabin fingerprint (CRC-64-AVRO) of ``data``."""
    fp = 0xC15D213AA4D7A795
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def load_schema(name: str, path: Path | None = None) -> dict:
    """The parsed JSON of ``schemas/avro/<name>.avsc`` (or of ``path``)."""
    return json.loads((path or SCHEMA_DIR / f"{name}.avsc").read_text())


@lru_cache(maxsize=None)
def field_names(name: str, *path: str) -> tuple[str, ...]:
    """The field names of record ``name``, or of the record an array field at ``path`` holds:
    the one definition of a record's shape (``field_names("Result", "scores")``: a Result's
    summary of each Score).

    >>> field_names("Result", "scores")
    ('model_id', 'model_version', 'role', 'prediction', 'status', 'latency_ms')
    """
    record = load_schema(name)
    for step in path:
        kind = next(f["type"] for f in record["fields"] if f["name"] == step)
        record = kind["items"] if isinstance(kind, dict) and kind.get("type") == "array" else kind
    return tuple(f["name"] for f in record["fields"])


def _reject_constant(token: str) -> float:
    raise DecodeError(f"JSON contains {token}, which is not a number; send finite numbers")


class Codec:
    """Encoder/decoder for one record type of the contract."""

    def __init__(self, name: str, schema: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.schema = fastavro.parse_schema(dict(schema or load_schema(name)))
        canonical = fastavro.schema.to_parsing_canonical_form(self.schema)
        self.fingerprint = crc64_avro(canonical.encode())
        self.header = MAGIC + struct.pack("<Q", self.fingerprint)
        self._fields = {f["name"]: f for f in self.schema["fields"]}
        self._check: Callable[[dict], None] = _SEMANTIC_CHECKS.get(name, _no_check)

    # -- encoding -------------------------------------------------------------------
    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Avro single-object encoding of ``record`` (validated on the way)."""
        buf = io.BytesIO()
        buf.write(self.header)
        fastavro.schemaless_writer(buf, self.schema, dict(record))
        return buf.getvalue()

    def encode_json(self, record: Mapping[str, Any]) -> bytes:
        return json.dumps(record, separators=(",", ":"), allow_nan=False).encode()

    def encode_as(self, record: Mapping[str, Any], encoding: str) -> bytes:
        return self.encode_json(record) if encoding == "json" else self.encode(record)

    # -- decoding -------------------------------------------------------------------
    def decode(self, data: bytes | None, key: bytes | None = None) -> dict:
        """Decode Avro single-object or JSON bytes into a validated record.

        ``key`` (the Kafka message key) stands in for a JSON record's missing
        ``request_id``, so ``kcat -K:`` users need not repeat it.
        """
        if not data:
            raise DecodeError("empty message: expected Avro single-object encoding or a JSON object")
        limit = MAX_BYTES.get(self.name)
        if limit is not None and len(data) > limit:
            raise DecodeError(f"{self.name} of {len(data):,} bytes is larger than the {limit:,} bytes allowed "
                              f"(schemas/codec.py MAX_BYTES): send features, not documents", stage="validate")
        if data[:2] == MAGIC:
            record = self._decode_avro(data)
        elif data.lstrip()[:1] in (b"{", b"["):
            record = self._decode_json(data, key)
        else:
            raise DecodeError(
                f"unknown format (first byte 0x{data[0]:02x}): expected Avro single-object "
                f"encoding (C3 01 + fingerprint) or a JSON object"
            )
        self._check(record)
        return record

    def _decode_avro(self, data: bytes) -> dict:
        if len(data) < _HEADER:
            raise DecodeError(f"truncated Avro header: {len(data)} bytes, need at least {_HEADER}")
        (fingerprint,) = struct.unpack_from("<Q", data, 2)
        if fingerprint != self.fingerprint:
            raise DecodeError(
                f"unknown schema fingerprint {fingerprint:016x}; this topic expects "
                f"{self.name} ({self.fingerprint:016x}) from schemas/avro/{self.name}.avsc"
            )
        buf = io.BytesIO(data)
        buf.seek(_HEADER)
        try:
            record = fastavro.schemaless_reader(buf, self.schema, None)
        except Exception as exc:  # fastavro raises EOFError, UnicodeError, IndexError …
            raise DecodeError(f"invalid Avro body for {self.name}: {type(exc).__name__}: {exc}") from None
        if buf.tell() != len(data):
            raise DecodeError(f"{len(data) - buf.tell()} trailing bytes after the {self.name} record")
        return record

    def _decode_json(self, data: bytes, key: bytes | None) -> dict:
        try:
            record = json.loads(data, parse_constant=_reject_constant)
        except DecodeError:
            raise
        except ValueError as exc:
            raise DecodeError(f"invalid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise DecodeError("JSON must be an object")
        if "request_id" in self._fields and "request_id" not in record and key:
            record["request_id"] = key.decode("utf-8", "replace")
        unknown = sorted(set(record) - set(self._fields))
        if unknown:
            raise DecodeError(f"unknown field(s) {unknown} for {self.name}", stage="validate")
        for name, field in self._fields.items():
            if name not in record:
                if "default" not in field:
                    raise DecodeError(f"missing required field '{name}' of {self.name}", stage="validate")
                record[name] = field["default"]
        self.validate(record)
        return record

    def validate(self, record: Mapping[str, Any]) -> None:
        """Raise :class:`DecodeError` naming the field when ``record`` breaks the schema."""
        for name, field in self._fields.items():
            value = record.get(name)
            if not _avro_validate(value, field["type"], raise_errors=False):
                raise DecodeError(
                    f"field '{name}' of {self.name} has invalid value {_short(value)}"
                    f" (expected {_type_name(field['type'])})",
                    stage="validate",
                )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return " or ".join(_type_name(t) for t in avro_type)
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        return f"map of {_type_name(avro_type['values'])}" if kind == "map" else str(kind)
    return str(avro_type).split(".")[-1]


def _no_check(record: dict) -> None:
    return None


def _finite(name: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise DecodeError(f"field '{name}' is {value}; only finite numbers are accepted", stage="validate")


def _check_request(record: dict) -> None:
    if not record["request_id"]:
        raise DecodeError("field 'request_id' is empty", stage="validate")
    if not record["features"]:
        raise DecodeError("field 'features' is empty: send at least one feature", stage="validate")
    for name, value in record["features"].items():
        _finite(f"features.{name}", value)
    deadline = record.get("deadline_ms")
    if deadline is not None and not 0 < deadline <= _MAX_DEADLINE_MS:
        raise DecodeError(
            f"field 'deadline_ms' is {deadline}; it must be between 1 and {_MAX_DEADLINE_MS}",
            stage="validate",
        )


def _check_feedback(record: dict) -> None:
    if not record["request_id"]:
        raise DecodeError("field 'request_id' is empty", stage="validate")
    _finite("label", record["label"])


def _check_score(record: dict) -> None:
    if not record["request_id"] or not record["model_id"]:
        raise DecodeError("fields 'request_id' and 'model_id' must not be empty", stage="validate")
    if record["status"] not in ("ok", "error", "late"):
        raise DecodeError(f"field 'status' is {record['status']!r}; expected ok, error or late", stage="validate")
    _finite("latency_ms", record["latency_ms"])


def _check_score_batch(record: dict) -> None:
    for score in record["scores"]:
        _check_score(score)


#: The largest message of a record type any worker accepts: a request is features, not a
#: document, and one oversized message must not stall a micro-batch for everyone.
MAX_BYTES: dict[str, int] = {"Request": 256 * 1024, "Feedback": 64 * 1024}

_SEMANTIC_CHECKS: dict[str, Callable[[dict], None]] = {
    "Request": _check_request,
    "Feedback": _check_feedback,
    "Score": _check_score,
    "ScoreBatch": _check_score_batch,
}


def decode_scores(data: bytes | None, key: bytes | None = None) -> list[dict]:
    """The Scores in a message of ``{p}.scores``: one Score, or a ScoreBatch (Avro or JSON)."""
    batch = codec_for("ScoreBatch")
    if data and data[:2] == MAGIC:
        is_batch = data[:_HEADER] == batch.header
    else:  # JSON from another language: a batch is an object whose only field is "scores"
        try:
            parsed = json.loads(data or b"null", parse_constant=_reject_constant)
        except ValueError:
            parsed = None
        is_batch = isinstance(parsed, dict) and set(parsed) == {"scores"}
    if is_batch:
        return batch.decode(data)["scores"]
    return [codec_for("Score").decode(data, key)]


@lru_cache(maxsize=None)
def codec_for(name: str) -> Codec:
    """The shared codec of one of :data:`SCHEMA_NAMES`."""
    if name not in SCHEMA_NAMES:
        raise KeyError(f"unknown record type {name!r}; expected one of {SCHEMA_NAMES}")
    return Codec(name)
