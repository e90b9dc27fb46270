"""``recommend ID`` against a real Redis seeded by a bootstrap (the pandas check on the real data is in
test_worker_stream.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from shared.exceptions import UnknownCustomerError
from shared.settings import Settings
from shared.state.customers import find_record, product_units
from shared.state.keys import Keys
from shared.state.popularity import segment_products
from shared.state.recommendations import recommend
from tests.tools_helpers import bootstrap_simulated, customer_key, run_tool, top_units
from worker.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_help_explains_the_rule_and_lists_every_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "recommend", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "ID" in done.stdout and "--top" in done.stdout and "--json" in done.stdout
    assert "published segment" in done.stdout and "bought or returned" in done.stdout
    with pytest.raises(SystemExit):
        build_parser().parse_args(["recommend", "17850", "--top", "0"])


def test_recommend_top_products_of_the_segment_the_customer_never_had(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    fitted = bootstrap_simulated(settings, redis_client, tmp_path)
    keys = Keys(settings.redis.key_prefix)
    customer = str(fitted.features.index[0])
    record = find_record(redis_client, keys, customer)
    assert record is not None
    segment = record.published
    had = product_units(redis_client, keys, customer)  # bought or returned
    popular = segment_products(redis_client, keys, segment)  # the partitions' shares summed
    expected = top_units(popular, 5, exclude=had)
    assert len(expected) == 5 and had
    assert [(r.stock_code, r.units) for r in recommend(redis_client, keys, customer, 5)] == expected

    code, out = run_tool(settings, ["recommend", customer, "--top", "5", "--json"])
    assert code == 0
    info = json.loads(out)
    names = {s.id: s.name for s in fitted.snapshot.segments}
    descriptions = {s.id: s.description for s in fitted.snapshot.segments}
    assert info["customer_id"] == customer
    assert info["segment"] == {"id": segment, "name": names[segment], "description": descriptions[segment]}
    assert [(row["stock_code"], row["units"]) for row in info["recommendations"]] == expected

    _, out = run_tool(settings, ["recommend", customer, "--top", "3"])
    lines = out.splitlines()
    assert lines[0] == f"customer {customer}, segment {segment} {names[segment]}: 3 products it has not had"
    assert lines[1].split() == ["rank", "stock", "code", "segment", "net", "units"]
    assert [line.split()[1] for line in lines[3:]] == [code for code, _ in expected[:3]]
    print("\n" + out)

    redis_client.hset(customer_key(redis_client, keys, customer), "published", "")  # as before its first publish
    _, out = run_tool(settings, ["recommend", customer])
    assert out.strip() == f"customer {customer} has no published segment yet: nothing to recommend"
    with pytest.raises(UnknownCustomerError, match="no record"):
        run_tool(settings, ["recommend", "nobody"])
