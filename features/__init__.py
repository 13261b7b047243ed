"""Data quality and drift, pure statistics: no Kafka, no Faust.

``profile`` / ``reference`` (a training set's reference profile and its Great Expectations
suite), ``drift`` (per-feature drift tests, chosen by sample size, and the share of requests
unlike the training population), ``quality`` (a window's verdict: GX + drift + decay), ``decay``
(River's ADWIN on every model's errors, used by the rendezvous engine).
"""
