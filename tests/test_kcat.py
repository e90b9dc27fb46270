"""A non-Python client reads what the system publishes: kcat (librdkafka) prints the topics as JSON lines.

kcat is the Debian package ``kcat`` (1.7.1, librdkafka 2.0.2). The two ``-X`` options
make it speak the old protocol versions, because librdkafka 2.0.2 cannot parse the
tagged fields in Tansu's ApiVersions response; ``-o 0`` instead of ``-o beginning``
because Tansu's ListOffsets v0 answer lacks its offsets array. See the README.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from pydantic import BaseModel

from shared.contracts.drift_alert import DriftAlert
from shared.contracts.segment_change import SegmentChange
from shared.settings import Settings
from tests.tools_helpers import alert, change, publish

OLD_PROTOCOL = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0"]


def kcat_values(settings: Settings, topic: str) -> list[str]:
    """Every value of ``topic``, one per line, read by kcat from offset 0 to the end."""
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not on PATH: apt-get install -y kcat")
    command = ["kcat", "-b", settings.kafka.bootstrap_servers, *OLD_PROTOCOL, "-C", "-t", topic]
    result = subprocess.run(
        [*command, "-o", "0", "-e", "-q", "-f", "%s\\n"], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.splitlines()


@pytest.mark.parametrize(
    ("topic", "contract", "events"),
    [
        (
            "segment_changes",
            SegmentChange,
            [change("c1", 1, None, (0, "champions")), change("c2", 2, (0, "a"), (1, "b"))],
        ),
        ("drift_alerts", DriftAlert, [alert("a1", "avg_order_value"), alert("a2", "segment_shares", "closed")]),
    ],
)
def test_kcat_prints_the_topic_as_json_lines(
    settings: Settings, topic: str, contract: type[BaseModel], events: list[BaseModel]
) -> None:
    name = getattr(settings.topics, topic)
    publish(settings, name, [(f"key-{i}", event) for i, event in enumerate(events)])
    lines = kcat_values(settings, name)
    parsed = sorted((contract.model_validate(json.loads(line)) for line in lines), key=lambda e: e.model_dump_json())
    assert parsed == sorted(events, key=lambda e: e.model_dump_json())
    print(f"\nkcat {name}:\n" + "\n".join(lines))
