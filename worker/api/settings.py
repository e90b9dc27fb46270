"""API options (``SEG_API_*``): where it listens and who may read.

Safe by default: it binds to loopback, and on any other address it refuses to
start without a bearer token unless auth is turned off on purpose.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings

from shared.settings import section_config

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or name (only this machine can connect).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("api.internal")
    (True, True, False, False)
    """
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiSettings(BaseSettings):
    """The HTTP API and dashboard of ``python -m worker api``."""

    model_config = section_config("api")

    host: str = Field("127.0.0.1", min_length=1, description="address to bind; loopback by default")
    port: int = Field(8000, ge=1, le=65535)
    auth: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: a bearer token is required unless the host is loopback; on: always; off: never"
    )
    token: SecretStr | None = Field(None, description="the bearer token clients send (Authorization: Bearer …)")
    change_buffer: int = Field(
        20_000, ge=10, description="distinct segment changes kept in memory for the stream's resume and the dashboard"
    )
    end_offsets_ttl_s: float = Field(2.0, gt=0, description="how long the broker's end offsets are reused for lag")
    popularity_ttl_s: float = Field(
        2.0,
        ge=0,
        description="how long a segment's product ranking is reused for recommendations and top products "
        "(0: read on every request; worker/queries/popularity.py)",
    )

    @property
    def auth_required(self) -> bool:
        return self.auth == "on" or (self.auth == "auto" and not is_loopback(self.host))

    @field_validator("token")
    @classmethod
    def _token_when_required(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        host, auth = info.data.get("host", "127.0.0.1"), info.data.get("auth", "auto")
        required = auth == "on" or (auth == "auto" and not is_loopback(host))
        if required and (value is None or not value.get_secret_value()):
            reason = "SEG_API_AUTH=on" if auth == "on" else f"the API binds to {host}, not loopback"
            raise ValueError(
                f"a bearer token is required ({reason}): set SEG_API_TOKEN to a long random secret, "
                "or SEG_API_AUTH=off to serve without auth on purpose"
            )
        return value
