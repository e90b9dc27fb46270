"""The fetcher process's librdkafka consumer gets the same connection as every kafka-python client.

librdkafka refuses an unknown property when the client is built, so building one
checks the names; the values are checked against the settings they come from.
"""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Consumer

from shared.kafka_options import connection_options, librdkafka_options
from shared.settings import KafkaSettings

SECRET = "s3cr3t-pw"


def test_tls_and_sasl_settings_map_to_librdkafka_names_and_a_client_accepts_them(tmp_path: Path) -> None:
    secured = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "worker"}
    settings = KafkaSettings(
        bootstrap_servers="a:9092, b:9093", sasl_password=SECRET, ssl_cafile=tmp_path / "ca.pem", **secured
    )
    options = librdkafka_options(settings)
    assert options == {
        "bootstrap.servers": "a:9092,b:9093",
        "security.protocol": "sasl_plaintext",
        "client.id": settings.client_id,
        "socket.timeout.ms": settings.request_timeout_ms,
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "worker",
        "sasl.password": SECRET,
    }
    kafka_python = connection_options(settings)
    assert options["bootstrap.servers"].split(",") == kafka_python["bootstrap_servers"]
    without_tls = {name: value for name, value in options.items() if not name.startswith("ssl.")}
    Consumer(without_tls | {"group.id": "options-check"}).close()


def test_plaintext_settings_carry_no_tls_or_sasl_options() -> None:
    options = librdkafka_options(KafkaSettings())
    assert options["security.protocol"] == "plaintext"
    assert not [name for name in options if name.startswith(("ssl.", "sasl."))]
