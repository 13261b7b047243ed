"""Kafka plumbing, the foundation every layer above may use; no state of its own.

``settings`` (every ``RDV_*`` knob), ``clients`` (the one factory of aiokafka clients, carrying
TLS / SASL), ``topics`` (a pipeline's topic names, their creation and deletion), ``transport``
(the Faust app and transport every worker runs: fetch settings, commit hooks, idempotence, no
lost acks) and ``broker`` (the embedded Apache Kafka: Java, jars, process).
"""
