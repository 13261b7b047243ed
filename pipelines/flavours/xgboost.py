"""XGBoost models in XGBoost's own UBJSON/JSON format (never pickle)."""

from __future__ import annotations

import numpy as np
import xgboost as xgb

from pipelines.flavours.base import Model, Outcome
from pipelines.spec import ModelSpec

__all__ = ["XGBoostModel", "load"]


class XGBoostModel(Model):
    def __init__(self, spec: ModelSpec, booster: xgb.Booster) -> None:
        super().__init__(spec)
        self.booster = booster
        self._objective = booster.attr("objective") or ""

    def _predict(self, matrix: np.ndarray) -> list[Outcome]:
        out = self.booster.inplace_predict(matrix, validate_features=False)
        if out.ndim == 2:  # multi:softprob
            return [Outcome(int(r.argmax()), {str(k): float(p) for k, p in enumerate(r)}, None) for r in out]
        if self._objective.startswith("binary") or self._is_binary():
            return [Outcome(int(p >= 0.5), {"0": float(1 - p), "1": float(p)}, None) for p in out]
        return [Outcome(float(p), None, None) for p in out]

    def _is_binary(self) -> bool:
        config = self.booster.save_config()
        return '"name":"binary:' in config.replace(" ", "")


def load(spec: ModelSpec, data: bytes) -> XGBoostModel:
    booster = xgb.Booster()
    booster.load_model(bytearray(data))  # UBJ or JSON, told apart by XGBoost from the bytes
    booster.set_param({"nthread": 1})
    model = XGBoostModel(spec, booster)
    model._objective = "binary" if model._is_binary() else ""
    return model
