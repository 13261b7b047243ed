"""Thin Faust wiring, one module per role of a worker; the logic they call is in ``pipelines/``.

core worker: ``decoy`` (archive), ``rendezvous`` (requests + scores -> Results), ``feedback``
(labels joined, alerts, auto-promotion), with the REST views (``streams/web.py``);
model group worker: ``model_runner`` (scoring) and ``learner`` (River online learning);
``quality`` is a plain asyncio worker (GX windows, drift, decay). ``worker.Worker`` is what
the agents of one worker share; ``dlq.DeadLetters`` is where what cannot be handled goes.
"""
