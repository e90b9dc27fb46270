"""Settings validation: a wrong value stops the program with the variable to fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.exceptions import ConfigError
from shared.settings import KafkaSettings, RedisSettings, Settings, as_environment, isolated_settings, load


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SEG_* variable or .env of the machine leaks in."""
    for name in list(os.environ):
        if name.startswith("SEG_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SEG_KAFKA__BOOTSTRAP_SERVERS", "broker-without-port", "is not host:port"),
        ("SEG_KAFKA__SECURITY_PROTOCOL", "TLS", "PLAINTEXT"),
        ("SEG_KAFKA__REQUEST_TIMEOUT_MS", "10", "greater than or equal to 1000"),
        ("SEG_REDIS__URL", "http://127.0.0.1:6379", "must start with redis://"),
        ("SEG_REDIS__KEY_PREFIX", "", "at least 1 character"),
        ("SEG_TOPICS__PARTITIONS", "0", "greater than or equal to 1"),
    ],
)
def test_a_wrong_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load(Settings)
    assert variable in str(caught.value)
    assert message in str(caught.value)


def test_every_wrong_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEG_REDIS__URL", "localhost")
    monkeypatch.setenv("SEG_TOPICS__PARTITIONS", "-1")
    with pytest.raises(ConfigError) as caught:
        load(Settings)
    assert "SEG_REDIS__URL" in str(caught.value) and "SEG_TOPICS__PARTITIONS" in str(caught.value)


def test_sasl_needs_all_three_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEG_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SEG_KAFKA__SASL_MECHANISM", "PLAIN")
    with pytest.raises(ConfigError, match="SEG_KAFKA__SASL_PASSWORD"):
        load(Settings)
    monkeypatch.setenv("SEG_KAFKA__SASL_USERNAME", "shop")
    monkeypatch.setenv("SEG_KAFKA__SASL_PASSWORD", "s3cret")
    assert load(Settings).kafka.sasl_username == "shop"


def test_heartbeats_must_fit_three_times_in_a_session() -> None:
    with pytest.raises(ValueError, match="a third of session_timeout_ms"):
        KafkaSettings(session_timeout_ms=6_000, heartbeat_interval_ms=2_500)


def test_secrets_never_show_in_reprs_or_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEG_REDIS__PASSWORD", "hunter2")
    monkeypatch.setenv("SEG_TOPICS__PARTITIONS", "zero")
    with pytest.raises(ConfigError) as caught:
        load(Settings)
    assert "hunter2" not in str(caught.value)
    monkeypatch.delenv("SEG_TOPICS__PARTITIONS")
    settings = load(Settings)
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert settings.redis.password is not None and settings.redis.password.get_secret_value() == "hunter2"


def test_as_environment_rebuilds_the_same_settings_in_a_child(monkeypatch: pytest.MonkeyPatch) -> None:
    original = isolated_settings("broker:9092", "rediss://cache:6380/2", "child", partitions=4)
    original = original.model_copy(update={"redis": RedisSettings(url="rediss://cache:6380/2", password="pw")})
    for name, value in as_environment(original).items():
        monkeypatch.setenv(name, value)
    assert load(Settings) == original


def test_overrides_are_validated_like_the_environment() -> None:
    with pytest.raises(ConfigError, match="SEG_TOPICS"):
        load(Settings, topics={"partitions": 0})
