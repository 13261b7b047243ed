"""The entry points on top (the ``rendezvous`` CLI, the Faust app factory, REST, the stack and the
demo, the client library) over ``streams/kafka``, the Kafka plumbing every layer may use."""
