"""A real S3-compatible server for tests and benchmarks: S3Proxy (``org.gaul:s3proxy``) on the
broker's Java, keeping objects in a local directory.

The jar (its ``jar-with-dependencies``, pinned below by SHA-256) comes from Maven Central
(``RDV_MAVEN_REPOSITORY``) into the same checked cache as Kafka's jars. S3Proxy speaks the S3
protocol over HTTP with AWS signatures; the store reaches it through pyarrow's S3 client like
any S3 endpoint (``AWS_ENDPOINT_URL``), so what is tested is the real client against a real
server — never a mock of S3.

>>> S3PROXY.url("https://repo1.maven.org/maven2").rsplit("/", 1)[-1]
's3proxy-4.1.0-jar-with-dependencies.jar'
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from streams.kafka.broker.jars import Jar, _download, _valid, cache_dir, repository
from streams.kafka.broker.java import find_java
from streams.kafka.broker.kafka import free_port

__all__ = ["S3PROXY", "S3Server"]


class _Bundle(Jar):
    """A jar with a classifier (``-jar-with-dependencies``)."""

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}-jar-with-dependencies.jar"


S3PROXY = _Bundle("org.gaul", "s3proxy", "4.1.0",
                  "a4d025969aaf796616ed4b1e2491d87d455ce84bb28cb9db086b2e6aaa68b48d", 54_955_934)


class S3Server:
    """``with S3Server(directory) as s3:`` — an S3 endpoint on a free port; :meth:`env` gives the
    variables a client needs; :meth:`kill` and :meth:`start` make an outage."""

    access_key, secret_key = "rendezvous", "rendezvous-secret"

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def bucket(self, name: str) -> str:
        """Create bucket ``name`` (a directory of the backend); ``s3://name``."""
        (self.directory / "objects" / name).mkdir(parents=True, exist_ok=True)
        return f"s3://{name}"

    def _jar(self) -> Path:
        folder = cache_dir() / "s3proxy"
        folder.mkdir(parents=True, exist_ok=True)
        jar = folder / S3PROXY.filename
        if not _valid(jar, S3PROXY):
            jar.unlink(missing_ok=True)
            _download(S3PROXY, repository(), jar, timeout_s=300)
        return jar

    def start(self, timeout_s: float = 60.0) -> "S3Server":
        (self.directory / "objects").mkdir(parents=True, exist_ok=True)
        conf = self.directory / "s3proxy.properties"
        conf.write_text("\n".join([
            f"s3proxy.endpoint={self.endpoint}",
            "s3proxy.authorization=aws-v2-or-v4",
            f"s3proxy.identity={self.access_key}",
            f"s3proxy.credential={self.secret_key}",
            "jclouds.provider=filesystem",
            f"jclouds.filesystem.basedir={self.directory / 'objects'}",
        ]) + "\n")
        java = find_java()
        self.log = self.directory / "s3proxy.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([str(java.path), "-Xmx256m", "-jar", str(self._jar()),
                                             "--properties", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"S3Proxy exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"S3Proxy did not answer on {self.endpoint} within {timeout_s:.0f} s")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
            urllib.request.urlopen(self.endpoint, timeout=2).close()
        except urllib.error.HTTPError:  # 403 to an anonymous request: it is up
            return True
        except OSError:
            return False
        return True

    def kill(self) -> None:
        """The store goes away at once (SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
