"""The codec: Avro single-object encoding and JSON, validated against the same schema."""

import json
import struct

import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from schemas.codec import MAGIC, SCHEMA_NAMES, DecodeError, codec_for, crc64_avro

REQUEST = {
    "request_id": "r-1",
    "features": {"salary": 51_000.5, "age": 43, "car": "c4", "owner": True, "zip": None},
    "deadline_ms": 80,
    "tenant": "acme",
    "reply_to": None,
    "sent_at": 1_700_000_000_000,
}


def test_codec__avro_round_trip_keeps_every_field():
    codec = codec_for("Request")
    data = codec.encode(REQUEST)
    assert data[:2] == MAGIC
    assert codec.decode(data) == REQUEST


def test_codec__header_is_the_spec_single_object_fingerprint():
    codec = codec_for("Score")
    canonical = to_parsing_canonical_form(codec.schema)
    # fastavro's independent implementation of the spec's Rabin fingerprint agrees with ours
    # (fastavro prints the 8 bytes in the little-endian order the header carries them)
    ours = struct.pack("<Q", crc64_avro(canonical.encode()))
    assert ours.hex() == fastavro_fingerprint(canonical, "CRC-64-AVRO")
    assert codec.header == MAGIC + struct.pack("<Q", crc64_avro(canonical.encode()))


def test_codec__crc64_avro_of_empty_input_is_the_spec_seed():
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def test_codec__json_fills_defaults_and_validates():
    record = codec_for("Request").decode(b'{"request_id": "r-2", "features": {"age": 30}}')
    assert record["deadline_ms"] is None and record["tenant"] is None
    assert record["features"] == {"age": 30}


def test_codec__json_request_id_falls_back_to_the_kafka_key():
    record = codec_for("Request").decode(b'{"features": {"age": 30}}', key=b"k-9")
    assert record["request_id"] == "k-9"


@pytest.mark.parametrize(
    "payload, words",
    [
        (b"", "empty message"),
        (b"\x00\x00\x00\x00\x01abc", "unknown format (first byte 0x00)"),
        (MAGIC + b"\x01\x02", "truncated Avro header"),
        (MAGIC + b"\x00" * 8 + b"\x02", "unknown schema fingerprint"),
        (b'{"request_id": "r", "features": ', "invalid JSON"),
        (b'[1, 2]', "JSON must be an object"),
        (b'{"request_id": "r"}', "missing required field 'features'"),
        (b'{"request_id": "r", "features": {"a": [1]}}', "field 'features'"),
        (b'{"request_id": 7, "features": {"a": 1}}', "field 'request_id'"),
        (b'{"request_id": "r", "features": {"a": NaN}}', "NaN"),
        (b'{"request_id": "r", "features": {"a": Infinity}}', "Infinity"),
        (b'{"request_id": "r", "features": {"a": 1}, "colour": "red"}', "unknown field(s) ['colour']"),
        (b'{"request_id": "r", "features": {}}', "field 'features' is empty"),
        (b'{"request_id": "", "features": {"a": 1}}', "field 'request_id' is empty"),
        (b'{"request_id": "r", "features": {"a": 1}, "deadline_ms": -5}', "field 'deadline_ms'"),
    ],
)
def test_codec__bad_request_bytes_raise_a_reason_naming_the_problem(payload, words):
    with pytest.raises(DecodeError) as info:
        codec_for("Request").decode(payload)
    assert words in info.value.reason


def test_codec__truncated_avro_body_is_a_decode_error():
    data = codec_for("Request").encode(REQUEST)
    with pytest.raises(DecodeError, match="invalid Avro body"):
        codec_for("Request").decode(data[:-5])


def test_codec__avro_of_another_record_type_is_refused_by_fingerprint():
    score = codec_for("Feedback").encode({"request_id": "r", "label": 1, "observed_at": None})
    with pytest.raises(DecodeError, match="expects Request"):
        codec_for("Request").decode(score)


def test_codec__avro_nan_feature_is_refused_after_decoding():
    data = codec_for("Request").encode({**REQUEST, "features": {"a": float("nan")}})
    with pytest.raises(DecodeError, match="features.a"):
        codec_for("Request").decode(data)


def test_codec__json_and_avro_decode_to_the_same_record():
    codec = codec_for("Request")
    assert codec.decode(json.dumps(REQUEST).encode()) == codec.decode(codec.encode(REQUEST))


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_codec__every_schema_loads_with_a_distinct_fingerprint(name):
    others = {codec_for(n).fingerprint for n in SCHEMA_NAMES if n != name}
    assert codec_for(name).fingerprint not in others


SCORE = {"request_id": "r", "model_id": "m", "model_version": "1", "role": "champion", "prediction": 1,
         "probabilities": {"0": 0.2, "1": 0.8}, "latency_ms": 0.4, "status": "ok", "error": None}


def test_codec__scores_topic_takes_single_scores_and_batches_in_both_encodings():
    from schemas.codec import decode_scores

    batch = {"scores": [SCORE, {**SCORE, "model_id": "n"}]}
    assert decode_scores(codec_for("ScoreBatch").encode(batch)) == batch["scores"]
    assert decode_scores(json.dumps(batch).encode()) == batch["scores"]
    assert decode_scores(codec_for("Score").encode(SCORE)) == [SCORE]
    assert decode_scores(json.dumps(SCORE).encode()) == [SCORE]


def test_codec__bad_score_inside_a_batch_is_refused():
    from schemas.codec import decode_scores

    with pytest.raises(DecodeError, match="field 'status'"):
        decode_scores(json.dumps({"scores": [{**SCORE, "status": "meh"}]}).encode())


def test_codec__score_batch_items_are_exactly_the_score_schema():
    from schemas.codec import load_schema

    assert load_schema("ScoreBatch")["fields"][0]["type"]["items"] == load_schema("Score")


def test_codec__a_single_json_score_about_a_request_named_scores_is_not_a_batch():
    from schemas.codec import decode_scores

    single = {**SCORE, "request_id": "scores"}
    assert decode_scores(json.dumps(single).encode()) == [single]
