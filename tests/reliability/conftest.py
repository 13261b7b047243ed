"""The reliability suite uses the integration suite's fixtures (the broker, trained models)."""

from tests.integration.conftest import run  # noqa: F401  (a fixture)
