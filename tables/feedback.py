"""Feedback read back from ``{p}.feedback``: request_id -> the observed label (last one wins)."""

from __future__ import annotations

from tables.results import read_records

__all__ = ["read_feedback"]


async def read_feedback(kafka, topic: str) -> dict[str, object]:
    labels = {}
    for _, record in await read_records(kafka, topic, "Feedback"):
        label = record["label"]
        labels[record["request_id"]] = int(label) if isinstance(label, bool) else label
    return labels
