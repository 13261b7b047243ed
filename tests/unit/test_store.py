"""The store over a shared file system (file:// elsewhere than the data directory): the same
mirror, publish and pull as over S3 (tests/integration/test_store.py), without a server."""

from pipelines.flavours.base import ArtifactError
from pipelines.registry import ArtifactStore
from streams.kafka.settings import Settings
from streams.kafka.store import Store, StoreError
from tables.archive import ParquetArchive, read_archive

import pytest


def test_store__the_data_directory_is_the_store_by_default(tmp_path):
    store = Settings(data_dir=tmp_path).open_store()
    assert not store.remote and store.staging("p/a.txt") == tmp_path / "p" / "a.txt"
    assert store.upload_outgoing() == 0 and store.pull("p") == tmp_path / "p"


def test_store__a_shared_directory_carries_files_between_hosts(tmp_path):
    shared = (tmp_path / "nfs").as_uri()
    a, b = Store(shared, tmp_path / "a"), Store(shared, tmp_path / "b")
    archive = ParquetArchive(tmp_path / "a" / "p" / "archive", store=a)
    archive.add({"request_id": "r1", "features": {"x": 1.0}}, b"raw", 2, 7, 1_790_000_000.0)
    [written] = archive.flush()
    assert written.is_relative_to(tmp_path / "a" / ".outgoing")  # where it was made …
    assert a.pending() == 0 and not written.exists()  # … uploaded, then moved into the mirror
    assert (tmp_path / "nfs" / "p" / "archive" / "date=2026-09-21" / "partition=2").is_dir()
    assert list(read_archive(b.pull("p/archive", ".parquet"))["request_id"]) == ["r1"]
    assert not list((tmp_path / "nfs").rglob("*.tmp"))  # written aside, renamed into place

    blobs = ArtifactStore(tmp_path / "a" / "registry", a)
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    sha = blobs.put(source)
    there = ArtifactStore(tmp_path / "b" / "registry", b)
    assert there.has(sha) and not there.path(sha).exists()  # in the store, not fetched yet
    assert there.fetch(sha).read_bytes() == b"weights"
    assert not there.has("f" * 64)
    with pytest.raises(ArtifactError, match="cannot be had"):
        ArtifactStore(tmp_path / "b" / "registry", b).fetch("f" * 64)
    with pytest.raises(StoreError, match="does not exist"):
        b.fetch("p/nothing")


def test_store__an_unknown_s3_option_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(StoreError, match="known: region"):
        Store("s3://bucket/prefix?endpont=x", tmp_path)
