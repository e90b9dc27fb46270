"""Schemathesis against the API's own OpenAPI schema: no 5xx and no response outside the schema.

The API serves state a real worker produced (simulated invoices bootstrapped and
streamed) plus drift alerts stored as the monitor stores them. Schemathesis' pytest
plugin does not run under this pytest, so each operation's cases come from its
Hypothesis strategy here. The event stream
(``/changes/stream``) never ends, so it is left to tests/test_api_stream.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err, Ok

from shared.settings import isolated_settings
from shared.state.keys import Keys
from tests.api_rig import running_api
from tests.tools_helpers import alert, bootstrap_simulated, stream_simulated
from worker.drift_service.store import MonitorStore

EXAMPLES = 40


@pytest.fixture(scope="module")
def api_schema(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    config = isolated_settings(kafka_bootstrap, redis_url, "schema")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    workdir: Path = tmp_path_factory.mktemp("schema")
    bootstrap_simulated(config, client, workdir, stream_days=20)
    stream_simulated(config, workdir)
    closed = alert("b1", "segment_structure", state="closed").model_copy(update={"incident_id": "inc-b"})
    MonitorStore(client, Keys(config.redis.key_prefix), keep=100).commit(-1, 0, {}, [alert("a1", "x"), closed])
    try:
        with running_api(config) as url:
            yield schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(path="/changes/stream")
    finally:
        stale = list(client.scan_iter(match=config.redis.key_prefix + "*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()


def test_no_server_error_and_no_schema_violation(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation, EXAMPLES generated cases each (Hypothesis), with Schemathesis' default checks."""
    results = list(api_schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), [r.err() for r in results if isinstance(r, Err)]
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == 10, [operation.label for operation in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate()

        check()
