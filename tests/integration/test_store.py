"""The store on a real S3 server (S3Proxy): blobs verified after download, the archive spooled
while the store is down and uploaded when it is back, retention in the store."""

from __future__ import annotations

import hashlib

import pytest

from pipelines.flavours.base import ArtifactError
from pipelines.registry import ArtifactStore
from streams.kafka.store import Store, StoreError
from tables.archive import ParquetArchive, read_archive

pytestmark = pytest.mark.integration


def test_store__files_go_up_and_come_down_by_key(s3, tmp_path):
    url = s3.bucket("keys") + "/prefix"
    a, b = Store(url, tmp_path / "a"), Store(url, tmp_path / "b")
    assert a.remote and not Store(None, tmp_path / "c").remote
    path = tmp_path / "a" / "p" / "reports" / "one.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"n": 1}')
    assert a.push(path) == "p/reports/one.json"
    assert list(b.keys("p")) == ["p/reports/one.json"]
    assert (b.pull("p") / "reports" / "one.json").read_text() == '{"n": 1}'
    assert b.read_text("p/missing") is None
    with pytest.raises(StoreError, match="does not exist"):
        b.fetch("p/missing")


def test_store__a_blob_is_verified_after_download_and_a_corrupt_one_refused(s3, tmp_path, trained):
    directory, _ = trained
    url = s3.bucket("blobs")
    here = ArtifactStore(tmp_path / "a" / "registry", Store(url, tmp_path / "a"))
    sha = here.put(directory / "models" / "xgb.ubj")
    there = ArtifactStore(tmp_path / "b" / "registry", Store(url, tmp_path / "b"))
    assert not there.path(sha).exists()
    got = there.fetch(sha)  # downloaded, checked, kept read-only
    assert got == there.path(sha) and hashlib.sha256(got.read_bytes()).hexdigest() == sha
    assert oct(got.stat().st_mode & 0o777) == "0o444"

    # the object is replaced in the store behind the registry's back: a third host refuses it
    stored = s3.directory / "objects" / "blobs" / "registry" / "blobs" / sha[:2] / sha
    stored.write_bytes(b"not the model")
    elsewhere = ArtifactStore(tmp_path / "c" / "registry", Store(url, tmp_path / "c"))
    with pytest.raises(ArtifactError, match="corrupt or replaced"):
        elsewhere.fetch(sha)
    assert not elsewhere.path(sha).exists()  # nothing unverified is left in place
    with pytest.raises(ArtifactError, match="cannot be had from the store"):
        elsewhere.fetch("0" * 64)
    assert there.fetch(sha) == got  # the host that has the good bytes keeps them


def _add(archive, rid, partition=0):
    archive.add({"request_id": rid, "features": {"x": 1.0}}, rid.encode(), partition, 1, 1_790_000_000.0)


def test_store__the_archive_waits_for_a_store_that_is_down_and_goes_up_when_it_is_back(s3_server, s3, tmp_path):
    url = s3.bucket("outage")
    store = Store(url, tmp_path / "core")
    archive = ParquetArchive(tmp_path / "core" / "p" / "archive", store=store)
    _add(archive, "a", 0)
    _add(archive, "b", 1)
    written = archive.flush()
    assert sorted(p.parent.name for p in written) == ["partition=0", "partition=1"]
    assert all(p.parent.parent.name == "date=2026-09-21" for p in written)

    s3_server.kill()
    try:
        _add(archive, "c", 0)
        assert archive.flush()  # written locally at once; the store's failure is not the caller's
        assert store.pending() == 1
    finally:
        s3_server.start()
    _add(archive, "d", 0)
    archive.flush()  # the store is back: the waiting file goes up with the new one
    assert store.pending() == 0
    reader = Store(url, tmp_path / "quality")
    frame = read_archive(reader.pull("p/archive", ".parquet"))
    assert sorted(frame["request_id"]) == ["a", "b", "c", "d"]

    # retention deletes in the store, not only on this host
    assert archive.prune(max_age_s=0, now=2e9) == 4
    assert reader.keys("p/archive") == {}


def test_store__killing_the_store_mid_run_costs_no_answer_and_no_archived_request(broker, trained, tmp_path, run,
                                                                                   s3_server, s3):
    import asyncio

    from streams.testing import all_answered, make_stack, ready_client, rows

    url = s3.bucket("midrun")
    stack = make_stack(broker, trained, tmp_path, deadline_ms=1000, store=url, archive_flush_s=1.0)
    name = stack.spec.name
    reader = Store(url, tmp_path / "reader")

    async def scenario():
        client = await ready_client(stack)
        try:
            before = await client.run_load(rows(300, seed=1), rate_per_s=150)
            s3_server.kill()
            try:
                during = await client.run_load(rows(600, seed=2), rate_per_s=150)  # 4 s: several flushes fail
            finally:
                s3_server.start()
            after = await client.run_load(rows(300, seed=3), rate_per_s=150)
            ids = before + during + after
            missing = await all_answered(client, ids)
            for _ in range(60):  # the waiting files go up at the next flushes
                archived = set(read_archive(reader.pull(f"{name}/archive", ".parquet"))["request_id"])
                if set(ids) <= archived:
                    break
                await asyncio.sleep(0.5)
            return ids, missing, archived, client.received
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        ids, missing, archived, received = run(scenario())
        stack.check_alive()
    assert not missing and received.duplicates == 0
    assert all(received.results[i]["status"] == "ok" for i in ids)  # no answer waited for the store
    assert set(ids) <= archived
    assert "the store is unreachable" in stack.log_tail("core", 200_000)
    assert "the store is back" in stack.log_tail("core", 200_000)
