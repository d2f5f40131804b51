from pathlib import Path

import pytest
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.settings import Secret, Settings


def test_defaults_derive_app_id_from_prefix() -> None:
    settings = Settings.load(environ={})
    assert settings.topic_prefix == "catalogflow."
    assert settings.app_id == "catalogflow"
    assert settings.topic("product-changes") == "catalogflow.product-changes"


def test_environment_overrides_config_file(tmp_path: Path) -> None:
    config = tmp_path / "catalogflow.yaml"
    config.write_text("partitions: 12\ntopic_prefix: shop.\nstore: 'memory://'\n")
    settings = Settings.load(
        config, environ={"CATALOGFLOW_PARTITIONS": "3", "CATALOGFLOW_BROKER": "kafka://a:1,b:2"}
    )
    assert settings.partitions == 3
    assert settings.topic_prefix == "shop."
    assert settings.store == "memory://"
    assert settings.bootstrap_servers == "a:1,b:2"


def test_kafka_bootstrap_is_used_when_no_broker_is_set() -> None:
    assert Settings.load(environ={"KAFKA_BOOTSTRAP": "h:9"}).bootstrap_servers == "h:9"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CATALOGFLOW_PARTITIONS": "many"}, "partitions must be a whole number"),
        ({"CATALOGFLOW_STORE": "redis://"}, "store='redis://' is not one of"),
        ({"CATALOGFLOW_SECURITY_PROTOCOL": "SASL_SSL"}, "needs sasl_username"),
        ({"CATALOGFLOW_REPLICATION_FACTOR": "0"}, "replication_factor must be at least 1"),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(environ=environ)


def test_unknown_key_in_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("partitons: 3\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*partitons"):
        Settings.load(config, environ={})


def test_sasl_password_never_shows() -> None:
    settings = Settings.load(
        environ={
            "CATALOGFLOW_SECURITY_PROTOCOL": "SASL_SSL",
            "CATALOGFLOW_SASL_USERNAME": "svc",
            "CATALOGFLOW_SASL_PASSWORD": "hunter2",
        }
    )
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.sasl_password)
    assert isinstance(settings.sasl_password, Secret)
    assert settings.confluent_config()["sasl.password"] == "hunter2"
    assert settings.to_env()["CATALOGFLOW_SASL_PASSWORD"] == "hunter2"


def test_settings_round_trip_through_environment() -> None:
    settings = Settings.load(
        environ={"CATALOGFLOW_TOPIC_PREFIX": "x.", "CATALOGFLOW_PARTITIONS": "4"}
    )
    assert Settings.load(environ=settings.to_env()) == settings
