"""The decoy's archive: spooled before each commit, merged by the next flush, de-duplicated on read."""

import shutil

from tables.archive import ParquetArchive, read_archive


def _add(archive, rid):
    archive.add({"request_id": rid, "features": {"x": 1.0}}, b"raw-" + rid.encode(), 0, 1, 1_700_000_000.0)


def test_archive__spooled_rows_survive_a_crash_and_are_merged_once(tmp_path):
    archive = ParquetArchive(tmp_path / "archive")
    _add(archive, "a")
    _add(archive, "b")
    spooled = archive.spool()  # the commit hook: on disk before the offsets are committed
    assert spooled.parent.name == "spool" and archive.spool() is None  # nothing new: no file
    _add(archive, "c")  # buffered only: its offset is not committed yet
    restarted = ParquetArchive(tmp_path / "archive")  # a SIGKILL lost "c"'s buffer (it will be redelivered)
    _add(restarted, "c")
    restarted.flush()
    frame = read_archive(tmp_path / "archive")
    assert sorted(frame["request_id"]) == ["a", "b", "c"] and list(frame["f_x"]) == [1.0] * 3
    assert not list((tmp_path / "archive" / "spool").glob("*.parquet"))  # merged, then removed
    assert len(list((tmp_path / "archive").rglob("part-*.parquet"))) == 1


def test_archive__a_crash_between_merge_and_cleanup_only_duplicates_what_readers_drop(tmp_path):
    archive = ParquetArchive(tmp_path / "archive")
    _add(archive, "a")
    spooled = archive.spool()
    keep = tmp_path / "copy.parquet"
    shutil.copy(spooled, keep)
    archive.flush()
    shutil.copy(keep, spooled)  # as if the process died before deleting the spooled file
    ParquetArchive(tmp_path / "archive").flush()
    assert list(read_archive(tmp_path / "archive")["request_id"]) == ["a"]


def test_archive__retention_deletes_files_older_than_the_limit(tmp_path):
    import os

    archive = ParquetArchive(tmp_path / "archive")
    _add(archive, "old")
    [old] = archive.flush()
    os.utime(old, (1_000, 1_000))  # written long ago
    _add(archive, "new")
    archive.flush()
    assert archive.prune(max_age_s=3600) == 1
    assert list(read_archive(tmp_path / "archive")["request_id"]) == ["new"]


def test_archive__is_a_dataset_the_readmes_duckdb_query_reads(tmp_path):
    import re
    from pathlib import Path

    import duckdb

    archive = ParquetArchive(tmp_path / "data" / "demo" / "archive")
    for i in range(90):  # three partitions, two days
        archive.add({"request_id": f"r{i}", "features": {"age": 20 + i % 3}}, b"raw", i % 3, i,
                    1_790_000_000.0 + (86_400 if i >= 60 else 0))
    archive.flush()
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    query = re.search(r"```sql\n(.*?)```", readme, re.S).group(1)
    frame = duckdb.sql(query.replace("data/demo/archive", str(tmp_path / "data" / "demo" / "archive"))).df()
    assert list(frame["requests"]) == [20, 20, 20, 10, 10, 10]
    assert list(frame["partition"]) == [0, 1, 2] * 2 and frame["date"].nunique() == 2
    assert list(frame["mean_age"]) == [20.0, 21.0, 22.0] * 2
