"""Feature specs and transforms, reference profiles, drift statistics, Great Expectations suites.

The foundation scores raw feature maps as the models' specs list them (``features:`` in a
deployment spec); profiles and drift monitors arrive with the data-quality work.
"""
