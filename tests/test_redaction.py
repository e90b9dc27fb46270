"""Credentials never reach a message: URLs, settings errors and reprs, kafka-python's logged configuration."""

from __future__ import annotations

import logging

import pytest
from kafka.errors import (
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)

from shared.exceptions import AuthenticationFailedError, ConfigError, ServiceUnavailableError
from shared.kafka_clients import kafka_error
from shared.kafka_options import connection_options
from shared.redaction import SecretText, has_credentials, redact, redact_url
from shared.settings import KafkaSettings, RedisSettings, Settings, load

SECRET = "s3cret!pw"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{SECRET}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (f"rediss://app:{SECRET}@cache:6380/1", "rediss://app:***@cache:6380/1"),
        (f"redis://{SECRET}@cache:6379", "redis://***@cache:6379"),
        (f"redis://:p@ss{SECRET}@host:1/0", "redis://:***@host:1/0"),
        (f"unix://:{SECRET}@/run/redis.sock?db=2", "unix://:***@/run/redis.sock?db=2"),
        (f"redis://cache:6379/0?db=1&Password={SECRET}#x", "redis://cache:6379/0?db=1&Password=***#x"),
        (f"SASL_SSL://user:{SECRET}@broker:9093", "SASL_SSL://user:***@broker:9093"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_redact_url_masks_passwords_and_keeps_the_address(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert has_credentials(url) == (url != shown)


def test_redact_finds_every_url_in_a_text() -> None:
    text = f"tried redis://:{SECRET}@a:1/0 then 'rediss://u:{SECRET}@b:2/0', gave up"
    assert redact(text) == "tried redis://:***@a:1/0 then 'rediss://u:***@b:2/0', gave up"


def test_secret_text_is_the_password_on_the_wire_and_the_mask_in_a_logged_config(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", sasl_username="replay", sasl_password=SECRET
    )
    options = connection_options(settings)
    password = options["sasl_plain_password"]
    assert isinstance(password, SecretText)
    assert password.encode() == SECRET.encode() and "\0".join(["u", password]) == f"u\0{SECRET}"
    # The logger's own level: the worker's log setup (run by other tests) quiets "kafka" to WARNING.
    with caplog.at_level(logging.DEBUG, logger="kafka.admin.client"):
        logging.getLogger("kafka.admin.client").debug("Starting KafkaAdminClient with configuration: %s", options)
    assert SECRET not in caplog.text and "'sasl_plain_password': '***'" in caplog.text


def test_settings_errors_and_reprs_do_not_show_the_redis_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEG_REDIS__URL", f"http://:{SECRET}@cache:6379/0")
    with pytest.raises(ConfigError) as wrong_scheme:
        load(Settings)
    assert "SEG_REDIS__URL" in str(wrong_scheme.value) and SECRET not in str(wrong_scheme.value)
    assert "http://:***@cache:6379/0" in str(wrong_scheme.value)

    monkeypatch.setenv("SEG_REDIS__URL", f"redis://:{SECRET}@cache:6379/0")
    monkeypatch.setenv("SEG_REDIS__PASSWORD", "another")
    with pytest.raises(ConfigError) as twice:
        load(Settings)
    assert "set twice" in str(twice.value) and "SEG_REDIS__PASSWORD" in str(twice.value)
    assert SECRET not in str(twice.value)

    redis_settings = RedisSettings(url=f"redis://:{SECRET}@cache:6379/0")
    assert SECRET not in repr(redis_settings) and "redis://:***@cache:6379/0" in repr(redis_settings)


def test_credentials_in_bootstrap_servers_are_refused_without_echoing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEG_KAFKA__BOOTSTRAP_SERVERS", f"replay:{SECRET}@broker:9092")
    with pytest.raises(ConfigError) as error:
        load(Settings)
    message = str(error.value)
    assert "SEG_KAFKA__BOOTSTRAP_SERVERS" in message and "SEG_KAFKA__SASL_PASSWORD" in message
    assert SECRET not in message


def test_delivery_timeout_must_exceed_the_request_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEG_KAFKA__REQUEST_TIMEOUT_MS", "5000")
    monkeypatch.setenv("SEG_KAFKA__DELIVERY_TIMEOUT_MS", "5500")
    with pytest.raises(ConfigError, match="SEG_KAFKA__DELIVERY_TIMEOUT_MS"):
        load(Settings)


def test_kafka_errors_name_the_setting_to_fix_and_never_the_password() -> None:
    sasl = KafkaSettings(
        bootstrap_servers="broker:9092",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="replay",
        sasl_password=SECRET,
    )
    refused = kafka_error(sasl, SaslAuthenticationFailedError("Authentication failed during authentication"))
    assert isinstance(refused, AuthenticationFailedError)
    assert "authentication failed" in str(refused) and "SEG_KAFKA__SASL_PASSWORD" in str(refused)
    mechanism = kafka_error(sasl, UnsupportedSaslMechanismError("Enabled mechanisms: ['PLAIN']"))
    assert isinstance(mechanism, AuthenticationFailedError) and "SEG_KAFKA__SASL_MECHANISM" in str(mechanism)
    denied = kafka_error(sasl, TopicAuthorizationFailedError())
    assert isinstance(denied, ConfigError) and "ACLs" in str(denied)
    silent = kafka_error(sasl, KafkaTimeoutError("Unable to bootstrap from broker:9092"))
    assert isinstance(silent, ServiceUnavailableError) and "SEG_KAFKA__SASL_USERNAME" in str(silent)
    plain = kafka_error(KafkaSettings(bootstrap_servers="broker:9092"), KafkaTimeoutError("Unable to bootstrap"))
    assert "SASL" not in str(plain) and "SEG_KAFKA__BOOTSTRAP_SERVERS" in str(plain)
    assert not any(SECRET in str(error) for error in (refused, mechanism, denied, silent))
