"""REST bearer tokens: stored as hashes, bound to tenants; bad configuration says what to do."""

import pytest

from pipelines.spec import PipelineSpec, SpecError
from streams.auth import Tokens, hash_token, new_token
from streams.kafka.settings import Settings


def test_tokens__from_env_and_file_map_a_bearer_to_its_tenant(tmp_path):
    acme, beta = new_token(), new_token()
    assert acme != beta and acme.startswith("rdv_") and len(acme) > 40
    listed = tmp_path / "tokens"
    listed.write_text(f"# tenant sha256\nbeta {hash_token(beta)}  # added by ops\n\n")
    tokens = Tokens.from_settings(Settings.from_env({}, tokens=f"acme:{hash_token(acme)}", tokens_file=str(listed)))
    assert tokens.tenant_of(f"Bearer {acme}") == "acme" and tokens.tenant_of(f"Bearer {beta}") == "beta"
    assert tokens.tenant_of(f"Bearer {acme}x") is None and tokens.tenant_of(acme) is None
    assert tokens.tenant_of(None) is None and tokens.tenant_of("Bearer ") is None
    assert acme not in listed.read_text() and hash_token(acme) in tokens.hashes  # only hashes are kept


def test_tokens__none_configured_means_open_and_bad_entries_say_how_to_fix():
    assert Tokens.from_settings(Settings.from_env({})) is None
    with pytest.raises(ValueError, match="rendezvous token --tenant acme"):
        Tokens.from_settings(Settings.from_env({}, tokens="acme:not-a-hash"))


def test_spec__tenants_are_a_list_of_names_or_left_out():
    base = {"pipeline": "p", "models": [{"id": "a", "flavour": "external", "role": "champion", "group": "a"}]}
    assert PipelineSpec.from_dict(base).tenants is None
    spec = PipelineSpec.from_dict({**base, "tenants": ["acme"]})
    assert spec.tenants == ("acme",) and PipelineSpec.from_dict(spec.to_dict()).tenants == ("acme",)
    with pytest.raises(SpecError, match="tenants"):
        PipelineSpec.from_dict({**base, "tenants": "acme"})
