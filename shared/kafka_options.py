"""Kafka connection options (servers, TLS, SASL) for both client libraries, from :class:`KafkaSettings`.

Why apart from :mod:`shared.kafka_clients`: the worker's fetcher process consumes with
librdkafka only, and importing kafka-python there would cost it about 8 MB of memory
for nothing.
"""

from __future__ import annotations

from typing import Any

from shared.redaction import SecretText
from shared.settings import KafkaSettings


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    """The options every kafka-python client takes: servers, TLS and SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.bootstrap_servers.split(",")],
        "security_protocol": settings.security_protocol,
        "client_id": settings.client_id,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings, name)
        if value is not None:
            options[name] = str(value)
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else None
        options["sasl_plain_password"] = SecretText(password) if password is not None else None
    return options


# connection_options' names -> librdkafka's
_LIBRDKAFKA_NAMES = {
    "security_protocol": "security.protocol",
    "client_id": "client.id",
    "request_timeout_ms": "socket.timeout.ms",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
}


def librdkafka_options(settings: KafkaSettings) -> dict[str, Any]:
    """:func:`connection_options` in librdkafka's names, for the fetcher process's consumer.

    Why a second client library: kafka-python decodes each record in Python (about
    11.5 µs of CPU per record on the real year, measured against Tansu), librdkafka
    in C (about 2.5 µs, its threads included), and on a small machine that core is
    the one the worker's main thread and Redis need.
    """
    options = connection_options(settings)
    servers = options.pop("bootstrap_servers")
    out = {_LIBRDKAFKA_NAMES[name]: value for name, value in options.items()}
    out["security.protocol"] = settings.security_protocol.lower()
    return {"bootstrap.servers": ",".join(servers)} | out
