"""Refused credentials say so and name the setting to fix, against a real Redis with requirepass and a Tansu with SASL.

The secret never appears in the message, on stderr or in the logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.local_services import RedisServer, TansuBroker
from shared.exceptions import AuthenticationFailedError, ServiceUnavailableError
from shared.redis_client import make_redis
from shared.settings import RedisSettings
from tests.test_producer_replay import REPO, run_cli, write_rows

PASSWORD = "s3cret!pw"
WRONG = "wr0ng-pw"


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[RedisServer]:
    with RedisServer(appendonly=False, password=PASSWORD) as server:
        yield server


def test_the_right_password_works_from_the_url_or_the_setting(locked_redis: RedisServer) -> None:
    address = f"127.0.0.1:{locked_redis.port}/0"
    assert make_redis(RedisSettings(url=f"redis://:{PASSWORD}@{address}")).ping()
    assert make_redis(RedisSettings(url=f"redis://{address}", password=PASSWORD)).ping()


@pytest.mark.parametrize(
    ("where", "names"),
    [
        ("url", "SEG_REDIS__URL"),
        ("setting", "SEG_REDIS__PASSWORD"),
        ("missing", "this Redis requires a password: set SEG_REDIS__PASSWORD"),
    ],
)
def test_a_refused_redis_password_says_authentication_failed_and_names_its_setting(
    locked_redis: RedisServer, where: str, names: str
) -> None:
    address = f"127.0.0.1:{locked_redis.port}/0"
    settings = {
        "url": RedisSettings(url=f"redis://:{WRONG}@{address}"),
        "setting": RedisSettings(url=f"redis://{address}", password=WRONG),
        "missing": RedisSettings(url=f"redis://{address}"),
    }[where]
    with pytest.raises(AuthenticationFailedError) as refused:
        make_redis(settings)
    message = str(refused.value)
    assert "authentication failed" in message and names in message
    assert "does not answer" not in message and WRONG not in message and PASSWORD not in message


def test_an_unreachable_redis_is_reported_without_the_password() -> None:
    with pytest.raises(ServiceUnavailableError) as unreachable:
        make_redis(RedisSettings(url=f"redis://:{PASSWORD}@127.0.0.1:1/0", socket_timeout_s=1))
    message = str(unreachable.value)
    assert "redis://:***@127.0.0.1:1/0" in message and PASSWORD not in message


@pytest.mark.parametrize("where", ["url", "setting"])
def test_the_cli_prints_the_auth_failure_and_no_secret(locked_redis: RedisServer, where: str) -> None:
    address = f"127.0.0.1:{locked_redis.port}/0"
    env = (
        {"SEG_REDIS__URL": f"redis://:{WRONG}@{address}"}
        if where == "url"
        else {"SEG_REDIS__URL": f"redis://{address}", "SEG_REDIS__PASSWORD": WRONG}
    )
    result = subprocess.run(
        [sys.executable, "-m", "worker", "segments"],
        cwd=REPO,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "authentication failed" in result.stderr
    assert ("SEG_REDIS__URL" if where == "url" else "SEG_REDIS__PASSWORD") in result.stderr
    assert WRONG not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_a_replay_against_a_sasl_broker_with_wrong_credentials_names_the_sasl_settings(tmp_path: Path) -> None:
    """Tansu 0.6 with ``--authentication`` takes SCRAM only, from users kept in its storage engine.

    With the in-memory engine no user can exist (creating one needs an
    authenticated session), so every login is refused; Tansu answers a SCRAM
    login for an unknown user in a way kafka-python reads as a lost connection,
    so the client sees no broker answering. The message must then point at the
    SASL settings as well as at the servers, and must not show the password.
    """
    path = write_rows(tmp_path / "one.csv", ["1,S,D,1,2011-03-01 09:00:00,1.0,1,UK"])
    with TansuBroker(authentication=True) as broker:
        result = run_cli(
            "replay",
            str(path),
            "--quiet",
            env={
                "SEG_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "SEG_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "SEG_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
                "SEG_KAFKA__SASL_USERNAME": "replay",
                "SEG_KAFKA__SASL_PASSWORD": WRONG,
                "SEG_KAFKA__REQUEST_TIMEOUT_MS": "2000",
                "SEG_KAFKA__DELIVERY_TIMEOUT_MS": "4000",
                "SEG_PRODUCER_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
            },
        )
    assert result.returncode == 3, result.stderr
    for setting in ("SEG_KAFKA__SASL_MECHANISM", "SEG_KAFKA__SASL_USERNAME", "SEG_KAFKA__SASL_PASSWORD"):
        assert setting in result.stderr
    assert WRONG not in result.stderr + result.stdout and "Traceback" not in result.stderr
