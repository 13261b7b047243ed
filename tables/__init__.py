"""State: the stores a worker writes and the readers that read them back.

Changelog-backed tables written through one commit-time outbox (``outbox``: ``mailboxes``,
``scorestate``); the registry view of ``{p}.control`` (``registry``); Results and feedback read
back from their topics (``results``, ``feedback``); the Parquet archives of requests and Scores
and the quality table, with their DataFrame readers (``archive``, ``quality``).
"""
