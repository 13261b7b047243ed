"""Bad input on a real broker: every malformed request or label lands in the DLQ with its reason,
no worker crashes, and valid traffic keeps flowing — named cases, then seeded random mutations
of valid Avro requests (each has exactly one outcome: a Result or a dead letter)."""

from __future__ import annotations

import json
import random
import struct

import pytest

from schemas.codec import MAGIC, codec_for
from streams.testing import make_stack, ready_client, rows

pytestmark = pytest.mark.integration

REQUEST, FEEDBACK = codec_for("Request"), codec_for("Feedback")


def _request(rid: str, features: dict, **extra) -> dict:
    return {"request_id": rid, "features": features, "deadline_ms": None, "tenant": None, "reply_to": None,
            "sent_at": None, **extra}


def bad_requests(features: dict) -> dict[str, tuple[bytes, str]]:
    """key -> (payload, what its dead letter's reason must say)."""
    good = REQUEST.encode(_request("x", features))
    other_fingerprint = MAGIC + struct.pack("<Q", REQUEST.fingerprint ^ 1) + good[10:]
    return {
        "wrong-magic": (b"\xc3\x02" + good[2:], "unknown format"),
        "truncated-header": (good[:6], "truncated Avro header"),
        "truncated-body": (good[:-3], "invalid Avro body"),
        "unknown-fingerprint": (other_fingerprint, "unknown schema fingerprint"),
        "trailing-bytes": (good + b"\x00\x00", "trailing bytes"),
        "wrong-type-id": (json.dumps(_request(42, features)).encode(), "field 'request_id'"),
        "wrong-type-feature": (json.dumps(_request("wt", {"age": {"nested": [1]}})).encode(), "field 'features'"),
        "missing-field": (json.dumps({"request_id": "mf"}).encode(), "missing required field 'features'"),
        "nan": (b'{"request_id": "nan", "features": {"age": NaN}}', "NaN"),
        "infinity": (b'{"request_id": "inf", "features": {"age": Infinity}}', "Infinity"),
        "avro-inf": (REQUEST.encode(_request("ainf", {**features, "age": float("inf")})), "only finite numbers"),
        "extra-field": (json.dumps({**_request("ef", features), "surprise": 1}).encode(), "unknown field(s) ['surprise']"),
        "negative-deadline": (json.dumps(_request("nd", features, deadline_ms=-5)).encode(), "deadline_ms"),
        "empty-features": (json.dumps(_request("ef2", {})).encode(), "'features' is empty"),
        "one-megabyte": (json.dumps(_request("big", {**features, "pad": 1.0}, tenant="x" * 1_000_000)).encode(),
                         "larger than the 262,144 bytes allowed"),
        "empty-value": (b"", "empty message"),
        "not-an-object": (b"[1, 2, 3]", "JSON must be an object"),
        "broken-json": (b'{"request_id": "bj", "features": ', "invalid JSON"),
    }


def bad_feedback() -> dict[str, tuple[bytes, str]]:
    good = FEEDBACK.encode({"request_id": "f", "label": 1, "observed_at": None})
    return {
        "fb-garbage": (b"\x07\x07", "unknown format"),
        "fb-truncated": (good[:-1], "Avro"),
        "fb-missing-label": (b'{"request_id": "fb"}', "missing required field 'label'"),
        "fb-unknown-request": (json.dumps({"request_id": "no-such-request", "label": 1}).encode(), "unknown request"),
        "fb-big": (json.dumps({"request_id": "fb", "label": "y" * 100_000}).encode(), "larger than"),
    }


def mutations(features: dict, n: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """``n`` valid Avro requests, each with bytes flipped, cut or duplicated at random."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        rid = f"mut-{i:03d}"
        data = bytearray(REQUEST.encode(_request(rid, features, deadline_ms=2000)))
        kind = rng.choice(["flip", "cut", "dup", "zero"])
        at = rng.randrange(len(data))
        if kind == "flip":
            data[at] ^= 1 << rng.randrange(8)
        elif kind == "cut":
            del data[at:]
        elif kind == "dup":
            data[at:at] = data[at:at + rng.randrange(1, 8)]
        else:
            data[at] = 0
        out.append((rid, bytes(data)))
    return out


def test_fuzz__bad_requests_and_labels_go_to_the_dlq_and_valid_traffic_flows(broker, trained, tmp_path, run):
    stack = make_stack(broker, trained, tmp_path, deadline_ms=2000)
    features = rows(1)[0]
    named, labels, mutated = bad_requests(features), bad_feedback(), mutations(features, 60)
    topics = stack.spec.name + ".requests", stack.spec.name + ".feedback"

    async def scenario():
        client = await ready_client(stack)
        try:
            probes = set(client.received.results)  # the readiness probes' Results
            good = []
            for key, (payload, _) in named.items():
                await client.producer.send(topics[0], payload, key=key.encode())
                good.append(await client.send(rows(1, seed=len(good))[0]))
            await client.producer.send(topics[0], b"\x00not a request", key=None)  # no key at all
            for key, (payload, _) in labels.items():
                await client.producer.send(topics[1], payload, key=key.encode())
            for key, payload in mutated:
                await client.producer.send(topics[0], payload, key=key.encode())
            good.append(await client.send(rows(1, seed=99)[0]))  # after all of it: still answered
            # a plain JSON request, as any producer writes it, is answered too
            good.append(await client.send({}, request_id="json-1",
                                          raw=json.dumps({"request_id": "json-1", "features": features}).encode()))
            missing = await client.wait_results(good, timeout_s=60)
            keys = {*named, *labels}

            def settled(received) -> bool:
                dead = {d["key"].decode() for d in received.dlq if d["key"]}
                return keys <= dead and any(d["key"] is None for d in received.dlq) and len(
                    _outcomes(received, mutated, {*good, *probes})[0]) + len(_outcomes(received, mutated, {*good, *probes})[1]) >= len(mutated)

            await client.wait_for(settled, timeout_s=60)
            return {*good, *probes}, missing, client.received
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        known, missing, received = run(scenario())
        stack.check_alive()  # no worker crashed
    assert not missing, f"{len(missing)} valid requests got no Result"
    letters = {d["key"].decode(): d for d in received.dlq if d["key"]}
    for key, (payload, reason) in {**named, **labels}.items():
        assert key in letters, f"no dead letter for {key}"
        assert reason in letters[key]["reason"], (key, letters[key]["reason"])
        assert letters[key]["payload"] == payload[:64 * 1024] and letters[key]["payload_size"] == len(payload)
    assert all(letters[k]["source_topic"] == topics[1] for k in labels)
    assert any(d["key"] is None and "unknown format" in d["reason"] for d in received.dlq)
    # every mutation has exactly one outcome: a dead letter, or a Result (under its own id, or under
    # another id when the flipped byte was in the id itself), never both, never none
    dead, answered = _outcomes(received, mutated, known)
    assert len(dead) + len(answered) == len(mutated), (len(dead), len(answered))
    assert not {rid for rid, _ in mutated} & set(dead) & set(answered)
    assert len(dead) >= len(mutated) // 2  # most mutations break the record
    assert received.duplicates == 0


def _outcomes(received, mutated, known) -> tuple[list[str], list[str]]:
    """(mutations dead-lettered by key, Results other than the valid traffic and the probes)."""
    ours = {rid for rid, _ in mutated}
    dead = [d["key"].decode() for d in received.dlq if d["key"] and d["key"].decode() in ours]
    answered = [rid for rid in received.results if rid not in known]
    return dead, answered
