"""The reliability suite uses the integration suite's fixtures (real brokers, trained models)."""

from tests.integration.conftest import run  # noqa: F401  (a fixture)
