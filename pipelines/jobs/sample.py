"""A small pipeline run without Kafka, leaving the same files a real one leaves: for notebooks and docs.

Trains the demo's models, lets the real rendezvous (in-process, injected clock) answer
``n`` Agrawal loan applications with every model's score, archives the requests and Scores as
the decoy and the rendezvous do (Parquet), sends each request's label back as feedback through
the same join, and returns what a notebook needs. Nothing here is a copy of pipeline code: it
calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.rendezvous import Rendezvous
from pipelines.flavours import load_model
from pipelines.flavours.base import score_record
from pipelines.spec import PipelineSpec, load_spec
from pipelines.jobs.train import agrawal_rows, train_demo_models
from schemas.codec import codec_for
from tables.archive import ParquetArchive, ScoreArchive
from pipelines.mailbox import DictStore

__all__ = ["SampleRun", "run_sample"]


@dataclass
class SampleRun:
    spec: PipelineSpec
    server: Rendezvous          # its score state: ``server.book``
    archive_dir: Path           # requests, as the decoy writes them
    scores_dir: Path            # Scores, as the rendezvous archives them
    training_data: Path
    results: list[dict]
    labels: dict[str, int]


def run_sample(data_dir: Path, n: int = 2000, n_train: int = 3000, seed: int = 11) -> SampleRun:
    data_dir = Path(data_dir)
    spec = load_spec(train_demo_models(data_dir / "demo", n_train=n_train))
    models = [load_model(m) for m in spec.models]
    clock = [1_700_000_000_000.0]
    server = Rendezvous(spec, DictStore(), clock=lambda: clock[0])
    archive = ParquetArchive(data_dir / spec.name / "archive")
    scores = ScoreArchive(data_dir / spec.name / "scores")
    codec = codec_for("Request")
    results, labels = [], {}
    for i, (features, label) in enumerate(agrawal_rows(n, seed=seed)):
        rid, now_s = f"r{i}", clock[0] / 1000
        request = {"request_id": rid, "features": features, "deadline_ms": None, "tenant": None, "reply_to": None,
                   "sent_at": int(clock[0])}
        archive.add(request, codec.encode(request), i % spec.partitions, i, now_s)
        out = server.on_request(request, i % spec.partitions)
        for model in models:
            score = score_record(model.spec, rid, model.score_batch([features])[0], latency_ms=0.2)
            scores.add(score, now_s)
            out += server.on_score(score, i % spec.partitions)
        results += [record for _, _, record in out]
        labels[rid] = label
        server.on_feedback({"request_id": rid, "label": label}, i % spec.partitions, features)
        clock[0] += 20.0  # 50 requests/s
    archive.flush()
    scores.flush()
    return SampleRun(spec, server, data_dir / spec.name / "archive", data_dir / spec.name / "scores",
                     data_dir / "demo" / "models" / "training.csv", results, labels)
