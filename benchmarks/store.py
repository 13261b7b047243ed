"""What the shared store costs (issue 20): the archive's upload on the hot path, blob downloads at
start, and scanning the archive.

    python -m benchmarks.store                     # writes BENCHMARKS.md (~6 min)
    python -m benchmarks.store --runs 3 --rate 300 --duration-s 20 --soak-rate 500

The store is a real S3 server started for the run (S3Proxy on the broker's Java, objects on the
local disk: the figures are the protocol's and the client's cost, not a network's).

1. **Hot path**: the end-to-end pipeline (``benchmarks.e2e``) at ``--rate``, once with the store
   on ``file://`` (the data directory) and once on ``s3://``, alternating, ``--runs`` times; the
   median p99 and the timeouts of each. The archive is flushed and uploaded every 5 s off the
   event loop.
2. **Blobs at start**: a host with an empty data directory downloads and checks the demo's model
   blobs (``ArtifactStore.fetch``, what a worker does before it loads them); median of ``--runs``.
3. **Archive scan**: an archive the size of the 10-minute soak (``--soak-rate`` × 600 requests,
   written by the decoy's own writer in files of 5 s of traffic per partition), scanned by
   DuckDB from the local mirror and by pyarrow's dataset reader straight from S3: requests per
   day and partition and a feature's mean; median of ``--runs``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import e2e

START, END = "<!-- store:start -->", "<!-- store:end -->"
QUERY = """SELECT date, partition, count(*) AS requests, avg(CAST(features->>'$.age' AS DOUBLE)) AS mean_age
FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY ALL"""


def hot_path(s3, runs: int, rate: float, duration_s: float, workdir: Path, log) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {"file": [], "s3": []}
    for n in range(runs):
        for kind in ("file", "s3"):
            url = s3.bucket(f"hot{n}") if kind == "s3" else ""
            run = e2e.run_pipeline(None, [rate], duration_s, 100, 100.0, workdir / f"{kind}{n}", log, 2,
                                   store=url)
            row = run["results"][0]
            out[kind].append(row)
            log(f"  {kind:4} run {n + 1}: p50 {row['p50']:.1f} ms, p99 {row['p99']:.1f} ms, "
                f"{row['timeouts']} timeouts of {row['n']}")
    return out


def blobs(s3, runs: int, workdir: Path, log) -> dict:
    from pipelines.jobs.train import train_demo_models
    from pipelines.registry import ArtifactStore
    from pipelines.spec import load_spec
    from streams.kafka.store import Store

    spec = load_spec(train_demo_models(workdir / "blobs", pipeline="blobs"))
    url = s3.bucket("blobs")
    source = ArtifactStore(workdir / "host-a" / "registry", Store(url, workdir / "host-a"))
    shas = [source.put(m.artifact) for m in spec.models]
    size = sum(m.artifact.stat().st_size for m in spec.models)
    times = []
    for n in range(runs):
        host = workdir / f"host-b{n}"
        target = ArtifactStore(host / "registry", Store(url, host))
        start = time.perf_counter()
        for sha in shas:
            target.fetch(sha)
        times.append(time.perf_counter() - start)
    log(f"  blobs: {len(shas)} ({size / 2**20:.2f} MiB) in {statistics.median(times) * 1000:.0f} ms (median)")
    return {"count": len(shas), "bytes": size, "seconds": times}


def scan(s3, runs: int, soak_rate: float, workdir: Path, log) -> dict:
    import duckdb
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from pipelines.jobs.train import agrawal_rows
    from schemas.codec import codec_for
    from streams.kafka.store import Store
    from tables.archive import ParquetArchive

    url = s3.bucket("soak")
    store = Store(url, workdir / "soak")
    archive = ParquetArchive(workdir / "soak" / "demo" / "archive", store=store)
    codec, partitions, total = codec_for("Request"), 3, int(soak_rate * 600)
    per_file = int(soak_rate * 5)  # the decoy flushes every 5 s
    start_s = time.time() - 600
    upload = []
    for i, (features, _) in enumerate(agrawal_rows(total, seed=3)):
        request = {"request_id": f"r{i}", "features": features, "deadline_ms": 100, "tenant": None,
                   "reply_to": None, "sent_at": int((start_s + i / soak_rate) * 1000)}
        archive.add(request, codec.encode(request), i % partitions, i // partitions, start_s + i / soak_rate)
        if (i + 1) % per_file == 0:
            began = time.perf_counter()
            archive.flush()
            upload.append(time.perf_counter() - began)
    archive.flush()
    files = list(store.keys("demo/archive"))
    size = sum(p.stat().st_size for p in (workdir / "soak" / "demo" / "archive").rglob("*.parquet"))
    local = workdir / "soak" / "demo" / "archive"
    duck, arrow = [], []
    for _ in range(runs):
        began = time.perf_counter()
        frame = duckdb.sql(QUERY.format(root=local)).df()
        duck.append(time.perf_counter() - began)
        began = time.perf_counter()
        fs, root = store.arrow("demo/archive")
        table = ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive").to_table(
            columns=["request_id", "features"])
        ages = pc.cast(pc.utf8_slice_codeunits(table["features"], 0, 1), "string")  # touch every value
        arrow.append(time.perf_counter() - began)
        assert len(ages) == total
    assert int(frame["requests"].sum()) == total
    log(f"  scan: {total:,} requests in {len(files)} files ({size / 2**20:.1f} MiB): DuckDB {statistics.median(duck):.2f} s, "
        f"pyarrow over S3 {statistics.median(arrow):.2f} s; flush+upload of a 5 s file: "
        f"{statistics.median(upload) * 1000:.0f} ms median")
    return {"requests": total, "files": len(files), "bytes": size, "duckdb": duck, "arrow_s3": arrow,
            "flush_upload": upload}


def render(hot: dict, blob: dict, scanned: dict, rate: float, duration_s: float, command: str) -> str:
    med = statistics.median
    lines = [START, f"### The shared store (issue 20) — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- machine: {e2e._machine()}", f"- broker: {e2e.BROKER}; store: S3Proxy 4.1.0 (filesystem backend, "
             "same machine) through pyarrow's S3 client", f"- git commit: `{e2e._commit()}`",
             f"- command: `{command}`", "",
             f"**Hot path** — the demo pipeline at {rate:g} requests/s for {duration_s:g} s, deadline 100 ms, "
             f"the archive flushed (and uploaded) every 5 s; {len(hot['file'])} runs each, alternating:", "",
             "| store | p50 ms (median) | p99 ms (median) | p99 of each run | timeouts of each run |",
             "|---|---:|---:|---|---|"]
    for kind, label in (("file", "`file://` (the data directory)"), ("s3", "`s3://` (S3Proxy)")):
        rows = hot[kind]
        lines.append(f"| {label} | {med(r['p50'] for r in rows):.1f} | {med(r['p99'] for r in rows):.1f} | "
                     f"{', '.join(format(r['p99'], '.1f') for r in rows)} | {', '.join(str(r['timeouts']) for r in rows)} |")
    lines += ["", f"**Blobs at start** — a host with an empty data directory downloads and verifies the demo's "
                  f"{blob['count']} model blobs ({blob['bytes'] / 2**20:.2f} MiB): **{med(blob['seconds']) * 1000:.0f} ms** "
                  f"(median of {len(blob['seconds'])}; each {', '.join(f'{t * 1000:.0f}' for t in blob['seconds'])} ms).",
              "",
              f"**Archive scan** — {scanned['requests']:,} archived requests ({scanned['requests'] / 600:g} req/s × 10 min, "
              f"the soak's size) in "
              f"{scanned['files']} files, {scanned['bytes'] / 2**20:.1f} MiB of zstd Parquet; "
              "requests per day and partition and the mean age (the README's query):", "",
              "| reader | median s | runs (s) |", "|---|---:|---|",
              f"| DuckDB, local mirror | {med(scanned['duckdb']):.2f} | {', '.join(f'{t:.2f}' for t in scanned['duckdb'])} |",
              f"| pyarrow dataset, straight from S3 (request ids + features) | {med(scanned['arrow_s3']):.2f} | "
              f"{', '.join(f'{t:.2f}' for t in scanned['arrow_s3'])} |",
              "", f"Writing and uploading one 5-second file per partition (the decoy's flush, off the event loop): "
                  f"{med(scanned['flush_upload']) * 1000:.0f} ms median, {max(scanned['flush_upload']) * 1000:.0f} ms "
                  "at most.", "", END]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (medians are reported)")
    parser.add_argument("--rate", type=float, default=300.0, help="offered load of the hot-path runs, requests/s")
    parser.add_argument("--duration-s", type=float, default=20.0, help="seconds of load per hot-path run")
    parser.add_argument("--soak-rate", type=float, default=500.0, help="the soak's rate: the archive holds 600 s of it")
    parser.add_argument("--skip-hot-path", action="store_true", help="only the blob and scan figures (~1 min)")
    parser.add_argument("--out", type=Path, default=e2e.ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    from streams.kafka.broker.s3 import S3Server

    with tempfile.TemporaryDirectory(prefix="rdv-store-") as tmp, S3Server(Path(tmp) / "s3") as s3:
        os.environ.update(s3.env())  # the workers `up` starts inherit the endpoint and credentials
        hot = {"file": [], "s3": []} if args.skip_hot_path else hot_path(
            s3, args.runs, args.rate, args.duration_s, Path(tmp), print)
        blob = blobs(s3, args.runs, Path(tmp), print)
        scanned = scan(s3, args.runs, args.soak_rate, Path(tmp), print)
    command = "python -m benchmarks.store " + " ".join(argv if argv is not None else os.sys.argv[1:])
    if hot["file"]:
        e2e.write(args.out, render(hot, blob, scanned, args.rate, args.duration_s, command.strip()), START, END)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
