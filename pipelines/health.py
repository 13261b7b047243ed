"""Which models are down: a model that missed ``miss_limit`` deadlines in a row is not waited for.

Without this, a dead top-preference model would add the full deadline to every request.
A model is back the moment any score of it arrives (even a late one).

>>> health = ModelHealth(miss_limit=2)
>>> health.missed(["lr"]); health.missed(["lr"]); sorted(health.down)
['lr']
>>> health.seen("lr"); sorted(health.down)
[]
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["ModelHealth"]


class ModelHealth:
    """Counts consecutive missed deadlines per model."""

    def __init__(self, miss_limit: int = 3) -> None:
        self.miss_limit = miss_limit
        self._misses: dict[str, int] = {}
        self.down: set[str] = set()

    def missed(self, model_ids: Iterable[str]) -> None:
        """These models had not answered when a request's deadline passed."""
        for model_id in model_ids:
            count = self._misses.get(model_id, 0) + 1
            self._misses[model_id] = count
            if count >= self.miss_limit:
                self.down.add(model_id)

    def seen(self, model_id: str) -> None:
        """A score of this model arrived."""
        self._misses[model_id] = 0
        self.down.discard(model_id)
