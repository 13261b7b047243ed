"""The store: where everything another host needs lives (issue 20).

Kafka carries the events; the store carries the files: model blobs, the decoy's archive, the
Score archive, profiles, quality windows, replays, retrain sets and reports. ``RDV_STORE`` (or
``rendezvous --store``) is a URL that :func:`pyarrow.fs.FileSystem.from_uri` understands —
``file:///shared/rdv``, ``s3://bucket/prefix``, ``gs://…``, ``hdfs://…``, ``abfs://…`` — with
credentials from the usual environment and configuration (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, ``~/.aws/config``, …); any other scheme goes through fsspec when it is
installed. Unset, the store is the data directory itself, as it always was, and every call
here costs nothing.

The data directory is the store's local mirror: a key ``demo/archive/…/part-1.parquet`` is
``$RDV_DATA_DIR/demo/archive/…/part-1.parquet`` on every host. Writers make a file there (or,
with a remote store, under ``.outgoing/`` until it is uploaded) and publish it; readers
:meth:`Store.pull` a prefix — only the keys they do not have yet, since every file a key names
is immutable — and read the local copy. What stays local on purpose: the spool of rows not
yet flushed (``archive/spool/``), ``.outgoing/`` (files written but not uploaded yet: a store
that is down never blocks an answer, they go up at the next flush), the broker's own data and
caches.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

__all__ = ["Store", "StoreError", "OUTGOING"]

log = logging.getLogger(__name__)

OUTGOING = ".outgoing"


class StoreError(RuntimeError):
    """The store cannot be reached or does not hold what was asked for; the message says which."""


def _filesystem(url: str):
    """``(pyarrow FileSystem, root path)`` for a store URL."""
    import pyarrow.fs as pafs

    parts = urlsplit(url)
    if parts.scheme == "s3":
        # built here rather than by from_uri: a store that does not answer must fail in seconds,
        # not after the SDK's default minutes of retries (the flush thread waits on it)
        options = dict(parse_qsl(parts.query))
        kwargs: dict = {"connect_timeout": float(options.pop("connect_timeout", 3)),
                        "request_timeout": float(options.pop("request_timeout", 20)),
                        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3)}
        for name in ("region", "endpoint_override", "scheme", "access_key", "secret_key"):
            if name in options:
                kwargs[name] = options.pop(name)
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and "endpoint_override" not in kwargs:  # the AWS SDKs' variable (MinIO, S3Proxy, Ceph …)
            where = urlsplit(endpoint)
            kwargs.setdefault("scheme", where.scheme or "https")
            kwargs["endpoint_override"] = where.netloc or where.path
        if options:
            raise StoreError(f"store {url}: unknown option(s) {sorted(options)}; known: region, endpoint_override, "
                             "scheme, access_key, secret_key, connect_timeout, request_timeout")
        return pafs.S3FileSystem(**kwargs), f"{parts.netloc}{parts.path}".rstrip("/")
    try:
        return pafs.FileSystem.from_uri(url)
    except (ValueError, OSError, NotImplementedError) as exc:
        try:
            import fsspec
        except ImportError:
            raise StoreError(f"store {url}: pyarrow cannot open it ({exc}), and fsspec is not installed to try "
                             "(pip install fsspec and the filesystem's package, e.g. adlfs)") from None
        fs, root = fsspec.core.url_to_fs(url)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), root.rstrip("/")


class Store:
    """Files by key, kept in a store URL and mirrored under ``local`` (the data directory)."""

    def __init__(self, url: str | None, local: Path) -> None:
        self.local = Path(local)
        self.url = url or self.local.resolve().as_uri()
        self._fs = None
        self._upload_lock = threading.Lock()
        parts = urlsplit(self.url)
        if parts.scheme == "file" and Path(parts.path).resolve() == self.local.resolve():
            return  # the data directory is the store
        self._fs, self._root = _filesystem(self.url)

    @property
    def remote(self) -> bool:
        """Is the store somewhere else than the data directory?"""
        return self._fs is not None

    def __repr__(self) -> str:
        return f"Store({self.url!r}, local={str(self.local)!r})"

    def path(self, key: str) -> Path:
        """The local copy of ``key``."""
        return self.local / key

    def _remote(self, key: str) -> str:
        return f"{self._root}/{key}" if self._root else key

    def arrow(self, prefix: str):
        """``(pyarrow FileSystem, path)`` of ``prefix`` in the store, for ``pyarrow.dataset`` readers."""
        import pyarrow.fs as pafs

        return (self._fs, self._remote(prefix)) if self.remote else (pafs.LocalFileSystem(), str(self.local / prefix))

    # writing ---------------------------------------------------------------------------------

    def staging(self, key: str) -> Path:
        """Where a writer makes the file ``key``: in place when the data directory is the store,
        else under ``.outgoing/`` until :meth:`upload_outgoing` sends it."""
        return self.local / OUTGOING / key if self.remote else self.local / key

    def upload_outgoing(self) -> int:
        """Upload every staged file, oldest first, then move it to its place in the mirror; the
        number uploaded. A store that fails leaves the rest staged for the next call (and raises
        StoreError); a call while another is uploading returns 0 at once."""
        if not self.remote:
            return 0
        if not self._upload_lock.acquire(blocking=False):
            return 0
        try:
            staged = self.local / OUTGOING
            files = sorted((p for p in staged.rglob("*") if p.is_file() and not p.name.endswith(".tmp")),
                           key=lambda p: p.stat().st_mtime) if staged.exists() else []
            for path in files:
                key = path.relative_to(staged).as_posix()
                self._put(path, key)
                target = self.local / key
                target.parent.mkdir(parents=True, exist_ok=True)
                path.replace(target)
            return len(files)
        finally:
            self._upload_lock.release()

    def pending(self) -> int:
        """Files written but not uploaded yet."""
        staged = self.local / OUTGOING
        return sum(1 for p in staged.rglob("*") if p.is_file()) if self.remote and staged.exists() else 0

    def push(self, path: Path) -> str:
        """Upload a file of the mirror (``path`` under the data directory) now; its key."""
        key = Path(path).resolve().relative_to(self.local.resolve()).as_posix()
        if self.remote:
            self._put(Path(path), key)
        return key

    def upload(self, path: Path, key: str) -> None:
        """Upload any local file as ``key`` (an output written outside the data directory)."""
        if self.remote:
            self._put(Path(path), key)

    def push_tree(self, folder: Path, newer_than: float = 0.0) -> int:
        """Upload every file under ``folder`` (a profile, a GX project) changed after ``newer_than``
        (epoch s); how many."""
        if not self.remote or not Path(folder).exists():
            return 0
        files = [p for p in Path(folder).rglob("*") if p.is_file() and p.stat().st_mtime > newer_than]
        for p in files:
            self.push(p)
        return len(files)

    def _put(self, path: Path, key: str) -> None:
        import pyarrow.fs as pafs

        target = self._remote(key)
        try:
            if isinstance(self._fs, pafs.S3FileSystem):  # an object PUT is atomic: all of the file or none
                with path.open("rb") as source, self._fs.open_output_stream(target) as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                return
            # a file system (NFS, HDFS …): write aside, then rename into place
            self._fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            tmp = f"{target}.{uuid.uuid4().hex[:8]}.tmp"
            with path.open("rb") as source, self._fs.open_output_stream(tmp) as out:
                shutil.copyfileobj(source, out, 1 << 20)
            self._fs.move(tmp, target)
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot upload {key}: {exc}") from exc

    # reading ---------------------------------------------------------------------------------

    def keys(self, prefix: str) -> dict[str, float]:
        """Every key under ``prefix`` with its modification time (epoch s)."""
        if not self.remote:
            folder = self.local / prefix
            if not folder.exists():
                return {}
            return {p.relative_to(self.local).as_posix(): p.stat().st_mtime for p in folder.rglob("*")
                    if p.is_file() and "spool" not in p.relative_to(folder).parts}
        import pyarrow.fs as pafs

        base = self._remote(prefix)
        try:
            infos = self._fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot list {prefix}: {exc}") from exc
        strip = len(self._remote("")) if self._root else 0
        return {i.path[strip:]: (i.mtime.timestamp() if i.mtime else 0.0) for i in infos
                if i.type == pafs.FileType.File}

    def exists(self, key: str) -> bool:
        """Does the store hold ``key``? (Asked without downloading it.)"""
        if not self.remote:
            return (self.local / key).is_file()
        import pyarrow.fs as pafs

        try:
            return self._fs.get_file_info(self._remote(key)).type == pafs.FileType.File
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot look for {key}: {exc}") from exc

    def fetch(self, key: str, target: Path | None = None) -> Path:
        """Download ``key`` to ``target`` (default: its place in the mirror) and return it."""
        target = Path(target) if target is not None else self.local / key
        if not self.remote:
            if not target.exists():
                raise StoreError(f"store {self.url}: {key} does not exist")
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
        try:
            with self._fs.open_input_stream(self._remote(key)) as source, tmp.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            tmp.replace(target)
        except FileNotFoundError:
            raise StoreError(f"store {self.url}: {key} does not exist") from None
        except OSError as exc:
            raise StoreError(f"store {self.url}: cannot download {key}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def pull(self, prefix: str, suffix: str = "", refresh: bool = False) -> Path:
        """Mirror every key under ``prefix`` (ending in ``suffix``) not held locally yet — or, with
        ``refresh``, every one changed in the store since the local copy; the local folder. Archive
        files are immutable, so what is held is never fetched twice."""
        if self.remote:
            for key, mtime in self.keys(prefix).items():
                local = self.local / key
                if key.endswith(suffix) and (not local.exists() or (refresh and local.stat().st_mtime < mtime)):
                    self.fetch(key)
        return self.local / prefix

    def read_text(self, key: str) -> str | None:
        """A small mutable file (a pointer such as ``profiles/current``), always read from the store."""
        try:
            return self.fetch(key).read_text() if self.remote else (self.local / key).read_text()
        except (StoreError, FileNotFoundError):
            return None

    def delete_older(self, prefix: str, max_age_s: float, now: float | None = None) -> int:
        """Retention: delete the keys under ``prefix`` older than ``max_age_s`` (and their local copies)."""
        cutoff = (time.time() if now is None else now) - max_age_s
        old = [k for k, mtime in self.keys(prefix).items() if mtime < cutoff]
        for key in old:
            if self.remote:
                try:
                    self._fs.delete_file(self._remote(key))
                except OSError as exc:
                    log.warning("store: cannot delete %s: %s", key, exc)
            (self.local / key).unlink(missing_ok=True)
        return len(old)
