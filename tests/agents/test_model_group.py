"""A model group follows the registry: loads what is new, keeps what is unchanged, refuses bad bytes."""

import asyncio
from dataclasses import replace

from pipelines.scoring import ModelGroup
from pipelines.flavours import ArtifactError, Model
from pipelines.spec import ModelSpec


def spec(model_id, version="1", sha="a" * 64, role="challenger"):
    return ModelSpec(id=model_id, flavour="sklearn", role=role, group="g", version=version, sha256=sha)


def test_model_group__update_loads_keeps_refuses_and_drops():
    loads = []

    def loader(s):
        loads.append((s.id, s.version))
        if s.sha256 == "bad":
            raise ArtifactError(f"model {s.id}: refusing to load it")
        return Model(s)

    group = ModelGroup([Model(spec("x")), Model(spec("y"))])
    kept = group.models[0]
    changes = asyncio.run(group.update([replace(spec("x"), role="champion"), spec("z")], loader))
    assert loads == [("z", "1")]                                  # x unchanged: not reloaded
    assert [m.spec.id for m in group.models] == ["x", "z"] and group.models[0] is kept
    assert group.models[0].spec.role == "champion"
    assert set(changes) == {"x is now champion", "z version 1 loaded (challenger)", "y unloaded"}
    asyncio.run(group.update([spec("x", version="2", sha="bad"), spec("z")], loader))
    assert group.models[0] is kept and group.models[0].spec.version == "1"  # the refused v2 does not replace v1
