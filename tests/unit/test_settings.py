"""Settings come from RDV_* environment variables; a missing broker says how to get one."""

from pathlib import Path

import pytest

from streams.kafka.settings import NoBrokerError, Settings, kafka_bootstrap


def test_settings__read_from_environment_with_types():
    settings = Settings.from_env({"RDV_BROKER": "kafka://h:1", "RDV_FETCH_MAX_WAIT_MS": "25",
                                  "RDV_DATA_DIR": "/x", "RDV_TICK_MS": "2.5"})
    assert settings.bootstrap == "h:1" and settings.fetch_max_wait_ms == 25
    assert settings.data_dir == Path("/x") and settings.tick_ms == 2.5


def test_settings__overrides_win_over_environment():
    assert Settings.from_env({"RDV_WEB_PORT": "1"}, web_port=2).web_port == 2


def test_settings__bad_value_names_the_variable():
    with pytest.raises(ValueError, match="RDV_WEB_PORT"):
        Settings.from_env({"RDV_WEB_PORT": "eighty"})


def test_settings__no_broker_says_how_to_get_one():
    with pytest.raises(NoBrokerError, match="rendezvous broker"):
        Settings.from_env({}).bootstrap


def test_settings__kafka_urls_become_bootstrap_lists():
    assert kafka_bootstrap("kafka://a:1;b:2") == "a:1,b:2"
    assert kafka_bootstrap("a:1, b:2") == "a:1,b:2"


def test_topics__changelog_names_match_what_faust_derives(tmp_path):
    from streams.kafka.topics import PipelineTopics

    from pipelines.spec import PipelineSpec
    from streams.app import create_app
    from streams.kafka.settings import Settings

    spec = PipelineSpec.from_dict({"pipeline": "loans", "models": [{"id": "x", "flavour": "external", "role": "champion"}]})
    app = create_app(spec, Settings(broker="kafka://127.0.0.1:1", data_dir=tmp_path), role="core")
    derived = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    assert derived == set(PipelineTopics("loans").changelogs())  # ensure_topics creates every one of them


def test_settings__every_setting_survives_the_trip_to_a_worker_process():
    from dataclasses import asdict

    settings = Settings.from_env({}, broker="kafka://h:1", miss_limit=5, tick_ms=2.5, data_dir=Path("/d"))
    env = {f"RDV_{name.upper()}": str(value) for name, value in asdict(settings).items() if value is not None}
    assert Settings.from_env(env) == settings


def test_settings__fetch_linger_session_and_idempotence_defaults_unless_set():
    defaults = Settings.from_env({})
    assert (defaults.fetch_max_wait_ms, defaults.fetch_min_bytes, defaults.linger_ms, defaults.session_timeout_s,
            defaults.producer_idempotence) == (100, 1, 1.0, 10.0, True)
    tuned = Settings.from_env({"RDV_PRODUCER_IDEMPOTENCE": "0", "RDV_FETCH_MIN_BYTES": "8192", "RDV_LINGER_MS": "0.5"})
    assert (tuned.producer_idempotence, tuned.fetch_min_bytes, tuned.linger_ms) == (False, 8192, 0.5)
    with pytest.raises(ValueError, match="RDV_FETCH_MIN_BYTES"):
        Settings.from_env({"RDV_FETCH_MIN_BYTES": "lots"})


def test_settings__broker_security_for_aiokafka_and_faust():
    assert Settings.from_env({}).kafka_security() == {} and Settings.from_env({}).faust_credentials() is None
    sasl = Settings.from_env({"RDV_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "RDV_SASL_MECHANISM": "scram-sha-512",
                              "RDV_SASL_USERNAME": "u", "RDV_SASL_PASSWORD": "p"})
    assert sasl.kafka_security() == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                                     "sasl_plain_username": "u", "sasl_plain_password": "p"}
    credentials = sasl.faust_credentials()
    assert (credentials.username, credentials.mechanism.value) == ("u", "SCRAM-SHA-512")
    tls = Settings.from_env({"RDV_SECURITY_PROTOCOL": "SSL"}).kafka_security()
    assert tls["security_protocol"] == "SSL" and tls["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    # what Faust's aiokafka driver makes of our credentials (the SASL_SSL path runs end to end in test_security)
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
    assert credentials_to_aiokafka_auth(Settings.from_env({"RDV_SECURITY_PROTOCOL": "SSL"}).faust_credentials())[
        "security_protocol"] == "SSL"
    sasl_ssl = Settings.from_env({"RDV_SECURITY_PROTOCOL": "SASL_SSL", "RDV_SASL_MECHANISM": "PLAIN",
                                  "RDV_SASL_USERNAME": "u", "RDV_SASL_PASSWORD": "p"})
    auth = credentials_to_aiokafka_auth(sasl_ssl.faust_credentials())
    assert (auth["security_protocol"], auth["sasl_mechanism"]) == ("SASL_SSL", "PLAIN") and auth["ssl_context"]
    with pytest.raises(ValueError, match="RDV_SASL_MECHANISM"):
        Settings.from_env({"RDV_SECURITY_PROTOCOL": "SASL_SSL"}).kafka_security()
    with pytest.raises(ValueError, match="RDV_SECURITY_PROTOCOL"):
        Settings.from_env({"RDV_SECURITY_PROTOCOL": "KERBEROS"}).kafka_security()
