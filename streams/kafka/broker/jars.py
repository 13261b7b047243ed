"""Apache Kafka's jars, without Maven: a committed lock file, Maven Central over HTTPS, a checked cache.

``kafka-VERSION.lock`` (next to this module) lists every jar a single-node broker needs: its
Maven coordinates, SHA-256 and size. :func:`ensure_jars` fetches each one once from the
repository (``RDV_MAVEN_REPOSITORY``, Maven Central by default; a ``file://`` URL of a local
Maven repository such as ``~/.m2/repository`` works too) into the cache directory
(``RDV_CACHE_DIR``, else ``$XDG_CACHE_HOME/rendezvous``, else ``~/.cache/rendezvous``), and
checks every jar against its SHA-256 each time the broker starts: a tampered or truncated
jar is refused, deleted and fetched again; a download that does not match is never used.

Maintainers make the lock of a new Kafka release with Maven, once::

    python -m streams.kafka.broker.jars lock 4.2.0

>>> jar = Jar.parse("org.apache.kafka:kafka_2.13:4.1.1 " + "0" * 64 + " 6")
>>> jar.url("https://repo1.maven.org/maven2")
'https://repo1.maven.org/maven2/org/apache/kafka/kafka_2.13/4.1.1/kafka_2.13-4.1.1.jar'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["Jar", "JarError", "DEFAULT_REPOSITORY", "KAFKA_VERSION", "cache_dir", "ensure_jars", "listed_jars",
           "read_lock", "repository", "write_lock"]

KAFKA_VERSION = os.environ.get("RDV_KAFKA_VERSION") or "4.1.1"
DEFAULT_REPOSITORY = "https://repo1.maven.org/maven2"
HERE = Path(__file__).resolve().parent


class JarError(RuntimeError):
    """The broker's jars cannot be had: the message says what to do."""


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str
    sha256: str
    size: int

    @classmethod
    def parse(cls, line: str) -> "Jar":
        """One lock line: ``group:artifact:version sha256 size``."""
        coordinates, sha256, size = line.split()
        group, artifact, version = coordinates.split(":")
        if len(sha256) != 64 or not set(sha256) <= set("0123456789abcdef"):
            raise ValueError(f"not a SHA-256: {sha256!r}")
        return cls(group, artifact, version, sha256, int(size))

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repo: str) -> str:
        return f"{repo.rstrip('/')}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.filename}"

    def line(self) -> str:
        return f"{self.coordinates} {self.sha256} {self.size}"


def lock_path(version: str = KAFKA_VERSION) -> Path:
    return HERE / f"kafka-{version}.lock"


def read_lock(version: str = KAFKA_VERSION, path: Path | None = None) -> list[Jar]:
    path = path or lock_path(version)
    if not path.exists():
        known = sorted(p.stem.removeprefix("kafka-") for p in HERE.glob("kafka-*.lock"))
        raise JarError(f"no lock file for Apache Kafka {version} (RDV_KAFKA_VERSION); locked versions: "
                       f"{', '.join(known) or 'none'}. A maintainer makes one with "
                       f"`python -m streams.kafka.broker.jars lock {version}` (needs Maven).")
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [Jar.parse(line) for line in lines if line]


def cache_dir(environ: dict | None = None) -> Path:
    """``RDV_CACHE_DIR``, else ``$XDG_CACHE_HOME/rendezvous``, else ``~/.cache/rendezvous``
    (``%LOCALAPPDATA%\\rendezvous`` on Windows)."""
    env = os.environ if environ is None else environ
    if env.get("RDV_CACHE_DIR"):
        return Path(env["RDV_CACHE_DIR"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "rendezvous"
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "rendezvous"
    return Path.home() / ".cache" / "rendezvous"


def repository(environ: dict | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get("RDV_MAVEN_REPOSITORY") or DEFAULT_REPOSITORY).rstrip("/")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _valid(path: Path, jar: Jar) -> bool:
    return path.is_file() and path.stat().st_size == jar.size and _sha256(path) == jar.sha256


def _download(jar: Jar, repo: str, target: Path, timeout_s: float = 60.0) -> None:
    """Fetch ``jar`` to ``target`` through a temporary file; only bytes that match its SHA-256 arrive."""
    url = jar.url(repo)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{jar.filename}.", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # honours https_proxy & co.
                shutil.copyfileobj(response, tmp, 1 << 20)
            tmp.close()
            got = _sha256(Path(tmp.name))
            if got != jar.sha256:
                raise JarError(f"{url} does not match the lock: SHA-256 {got}, expected {jar.sha256} "
                               f"({Path(tmp.name).stat().st_size} bytes, expected {jar.size}). Refused; check "
                               f"RDV_MAVEN_REPOSITORY or your proxy.")
            os.replace(tmp.name, target)
        finally:
            if os.path.exists(tmp.name):
                os.unlink(tmp.name)


def _offline_help(version: str, cache: Path, repo: str, cause: BaseException) -> JarError:
    return JarError(
        f"cannot fetch Apache Kafka {version}'s jars from {repo} ({cause}).\n"
        f"Either:\n"
        f"  - pre-seed the cache: on a machine with network run `rendezvous broker --fetch-only`, then copy its "
        f"{cache_dir() / f'kafka-{version}'} to {cache} here;\n"
        f"  - or point RDV_MAVEN_REPOSITORY at a reachable mirror (https://… or a local Maven repository: "
        f"file://$HOME/.m2/repository);\n"
        f"  - or use a Kafka broker you run yourself: --broker kafka://HOST:PORT (or RDV_BROKER).")


def ensure_jars(version: str = KAFKA_VERSION, cache: Path | None = None, repo: str | None = None,
                lock: list[Jar] | None = None, on_fetch: Callable[[Jar], None] | None = None) -> Path:
    """The directory of ``version``'s jars, every one checked against the lock; missing or bad ones
    are fetched first (``on_fetch(jar)`` after each). Raises :class:`JarError` saying what to do."""
    lock = read_lock(version) if lock is None else lock
    lib = (cache or cache_dir()) / f"kafka-{version}"
    lib.mkdir(parents=True, exist_ok=True)
    wanted = {jar.filename for jar in lock}
    for stray in lib.glob("*.jar"):  # an older lock's jars would join the classpath (lib/*)
        if stray.name not in wanted:
            stray.unlink()
    missing = [jar for jar in lock if not _valid(lib / jar.filename, jar)]
    if not missing:
        return lib
    repo = repo or repository()

    def fetch(jar: Jar) -> None:
        (lib / jar.filename).unlink(missing_ok=True)  # a tampered or truncated copy is never used
        _download(jar, repo, lib / jar.filename)
        if on_fetch:
            on_fetch(jar)

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(fetch, missing))
    except (urllib.error.URLError, OSError) as exc:
        raise _offline_help(version, lib.parent, repo, exc) from exc
    return lib


def listed_jars(listing: str) -> list[str]:
    r"""``group:artifact:version`` of every jar in the output of ``mvn dependency:list``.

    >>> listed_jars("The following files have been resolved:\n   org.lz4:lz4-java:jar:1.8.0:runtime -- module x\n")
    ['org.lz4:lz4-java:1.8.0']
    """
    listed = [line.strip().split(" ")[0].split(":") for line in listing.splitlines()]
    listed = [parts for parts in listed if len(parts) >= 5 and parts[2] == "jar"]
    if any(len(parts) != 5 for parts in listed):  # group:artifact:jar:classifier:version:scope
        raise JarError(f"a dependency with a classifier; the lock format has none: {listed}")
    return sorted({f"{parts[0]}:{parts[1]}:{parts[3]}" for parts in listed})


def write_lock(version: str, repo: str = DEFAULT_REPOSITORY, pom: Path = HERE / "pom.xml") -> Path:
    """Maintainers: resolve ``version``'s runtime jars with Maven (``pom.xml`` here), fetch each one
    from ``repo``, check it against the repository's own ``.sha1``, and write ``kafka-VERSION.lock``."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise JarError("making a lock needs Maven (mvn) on PATH; users of a lock never need it")
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "deps.txt"
        subprocess.run([mvn, "-q", "-B", "-f", str(pom), f"-Dkafka.version={version}", "dependency:list",
                        "-DincludeScope=runtime", f"-DoutputFile={listing}"], check=True)
        jars = []
        for coordinate in listed_jars(listing.read_text()):
            group, artifact, jar_version = coordinate.split(":")
            jar = Jar(group, artifact, jar_version, "0" * 64, 0)
            path = Path(tmp) / jar.filename
            with urllib.request.urlopen(jar.url(repo), timeout=60) as response:
                path.write_bytes(response.read())
            with urllib.request.urlopen(jar.url(repo) + ".sha1", timeout=60) as response:
                published = response.read().decode().split()[0].lower()
            if hashlib.sha1(path.read_bytes()).hexdigest() != published:
                raise JarError(f"{jar.url(repo)} does not match the repository's own .sha1: not locked")
            jars.append(Jar(group, artifact, jar_version, _sha256(path), path.stat().st_size))
    out = lock_path(version)
    header = (f"# Apache Kafka {version}: every jar of a single-node KRaft broker, from Maven Central.\n"
              f"# group:artifact:version sha256 size — made by `python -m streams.kafka.broker.jars lock {version}`\n")
    out.write_text(header + "".join(jar.line() + "\n" for jar in jars))
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m streams.kafka.broker.jars", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lock = sub.add_parser("lock", help="maintainers: write kafka-VERSION.lock for a Kafka release (needs Maven)")
    lock.add_argument("version")
    lock.add_argument("--repository", default=DEFAULT_REPOSITORY)
    fetch = sub.add_parser("fetch", help="fetch and check the jars of a locked version into the cache")
    fetch.add_argument("version", nargs="?", default=KAFKA_VERSION)
    args = parser.parse_args(argv)
    if args.command == "lock":
        print(f"wrote {write_lock(args.version, args.repository)}")
    else:
        print(f"jars of Apache Kafka {args.version} checked in {ensure_jars(args.version)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
