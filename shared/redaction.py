"""Credentials out of every message and log line.

Why one module: connection URLs carry passwords (``redis://:pw@host``, a
``?password=`` query) and errors quote whatever they were given. Every place that
puts a URL, a server list or a library's error text into a message passes it
through :func:`redact` first, so a secret set in ``SEG_*`` never reaches a
terminal, a log file or a support ticket.

>>> redact_url("redis://:s3cret!pw@127.0.0.1:6379/0")
'redis://:***@127.0.0.1:6379/0'
>>> redact("Redis at rediss://app:pw@cache:6380/1?password=pw failed")
'Redis at rediss://app:***@cache:6380/1?password=*** failed'
"""

from __future__ import annotations

import re

MASK = "***"
SECRET_QUERY_KEYS = ("password", "passwd", "pass", "secret", "token", "sasl_password")

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+._-]*://[^\s'\"<>]+")
_SECRET_QUERY = re.compile(rf"([?&](?:{'|'.join(SECRET_QUERY_KEYS)})=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values masked; a user name stays.

    Everything before the last ``@`` of the address part is user info (passwords
    often hold a raw ``@``). A lone user-info part (``redis://token@host``) is
    masked whole: Redis and most brokers read it as a password or a token.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    address_and_path = re.split(r"[?#]", rest, maxsplit=1)[0]
    at = address_and_path.rfind("@")
    if at >= 0:
        user, has_password, _ = address_and_path[:at].partition(":")
        rest = (f"{user}:{MASK}" if has_password else MASK) + rest[at:]
    return _SECRET_QUERY.sub(rf"\g<1>{MASK}", f"{scheme}://{rest}")


def has_credentials(url: str) -> bool:
    """True when ``url`` carries a user info part or a secret query value."""
    return redact_url(url) != url


def redact(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


class SecretText(str):
    """A string whose ``repr`` is the mask: for secrets handed to libraries that log their configuration.

    kafka-python logs its whole configuration dict at DEBUG, the SASL password
    included; a dict shows its values by ``repr``. Wrapped in this, the password
    is still the password for the handshake (``encode``, ``join``), but the
    configuration dict prints it as ``'***'``.

    >>> password = SecretText("s3cret")
    >>> str({"sasl_plain_password": password}), password.encode()
    ("{'sasl_plain_password': '***'}", b's3cret')
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)
