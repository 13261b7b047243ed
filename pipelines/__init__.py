"""The domain, pure: specs, flavours, policies, the registry's transitions, the rendezvous engine.

Nothing here talks to Kafka or runs Faust (``pyproject.toml``'s import contracts check it):
``spec`` and ``plugins`` (the one registration point of flavours and policies) at the bottom,
then ``flavours``, ``policies``, ``registry``, ``fallback``, ``promotion``, ``mailbox``,
``scorebook``, ``scoring`` (a model group's batches) and ``rendezvous`` (the engine). The
offline jobs that read state and publish, and the lifecycle operations, are ``pipelines/jobs``.
"""
