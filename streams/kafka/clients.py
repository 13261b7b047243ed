"""The one place aiokafka clients are made: :class:`Kafka` carries the address and the security settings.

Every consumer, producer and admin client of the project (registry view, Results read back,
the quality worker, the client library, topic administration, lag monitoring) is made by a
``Kafka``, so TLS and SASL reach all of them alike; nothing is process-global.

>>> Kafka.at("localhost:9092").bootstrap
'localhost:9092'
"""

from __future__ import annotations

from functools import cached_property

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka.settings import Settings, kafka_bootstrap

__all__ = ["Kafka", "kafka_of"]


class Kafka:
    """A broker as this process reaches it: ``Kafka(settings)``, or ``Kafka.at("host:port")``
    for a plaintext one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bootstrap = settings.bootstrap

    @classmethod
    def at(cls, address: str, **settings) -> "Kafka":
        """The broker at ``address`` (``host:port`` or ``kafka://host:port``)."""
        return cls(Settings(broker=kafka_bootstrap(address), **settings))

    @cached_property
    def security(self) -> dict:
        """aiokafka's keyword arguments for TLS / SASL (empty for plaintext); one SSL context."""
        return self.settings.kafka_security()

    def consumer(self, *topics: str, **options) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(*topics, bootstrap_servers=self.bootstrap, **self.security, **options)

    def producer(self, **options) -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap, **self.security, **options)

    def admin(self, **options) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.security, **options)

    def __repr__(self) -> str:
        return f"Kafka({self.bootstrap!r}, {self.settings.security_protocol})"


def kafka_of(where: "Kafka | Settings | str") -> Kafka:
    """A :class:`Kafka` from one, from Settings, or from a plaintext address."""
    if isinstance(where, Kafka):
        return where
    if isinstance(where, Settings):
        return Kafka(where)
    return Kafka.at(where)
