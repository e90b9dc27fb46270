"""``segments``, ``customer`` and ``models`` against a real Redis seeded by a bootstrap (and the broker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from shared.exceptions import ModelError, UnknownCustomerError
from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.model_stats import live_stats
from shared.state.model_store import activate, write_version
from tests.tools_helpers import bootstrap_simulated, change, publish, run_tool


def test_without_a_model_the_tools_say_how_to_make_one(settings: Settings, redis_client: redis.Redis) -> None:
    # Without a bootstrap not even a customer's partition is known (the layout is the bootstrap's).
    for argv in (["segments"], ["models"], ["customer", "12345", "--changes", "0"]):
        with pytest.raises(ModelError, match="python -m worker bootstrap"):
            run_tool(settings, argv)


def test_segments_sizes_shares_and_profiles(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    fitted = bootstrap_simulated(settings, redis_client, tmp_path)
    code, out = run_tool(settings, ["segments", "--json"])
    assert code == 0
    report = json.loads(out)
    assert report["model_version"] == 1
    sizes = {row["id"]: row["size"] for row in report["segments"]}
    assert sizes == {s.id: s.count for s in fitted.snapshot.segments}
    assert sum(sizes.values()) == len(fitted.features)
    assert sum(row["share"] for row in report["segments"]) == pytest.approx(1.0)
    assert all("monetary" in row["profile"] for row in report["segments"])
    keys = Keys(settings.redis.key_prefix)
    redis_client.hset(keys.model_stats, "count:0", 9999)  # sizes follow the live statistics
    _, out = run_tool(settings, ["segments"])
    lines = out.splitlines()
    assert lines[0].startswith("model v1: 4 segments")
    assert lines[1].split()[:4] == ["id", "name", "size", "share"]
    assert "9,999" in lines[3], out
    print("\n" + out)


def test_customer_state_and_recent_changes(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    fitted = bootstrap_simulated(settings, redis_client, tmp_path)
    customer = str(fitted.features.index[0])
    names = {s.id: s.name for s in fitted.snapshot.segments}
    publish(
        settings,
        settings.topics.segment_changes,
        [
            (customer, change(customer, 1, None, (0, names[0]))),
            ("other", change("other", 1, None, (1, names[1]))),
            (customer, change(customer, 2, (0, names[0]), (1, names[1]))),
            (customer, change(customer, 2, (0, names[0]), (1, names[1]))),
            (customer, change(customer, 3, (1, names[1]), (2, names[2]))),
        ],
    )
    code, out = run_tool(settings, ["customer", customer, "--json", "--changes", "2"])
    assert code == 0
    info = json.loads(out)
    assert info["customer_id"] == customer
    assert info["assigned"]["name"] == names[info["assigned"]["id"]]
    assert info["published"]["description"] == fitted.snapshot.segments[info["published"]["id"]].description
    assert info["aggregates"]["invoices"] == fitted.features.loc[fitted.features.index[0], "frequency"]
    assert set(info["features"]) >= {"recency_days", "monetary"}
    assert [c["sequence"] for c in info["recent_changes"]] == [2, 3]
    assert (info["last_change"]["sequence"], info["last_change"]["current"]["id"]) == (3, 2)
    _, out = run_tool(settings, ["customer", customer])
    assert f"customer {customer} as of" in out and "net_spend" in out and "recency_days" in out
    assert out.count(f"  {customer}  ") == 3, out  # three distinct changes, default --changes 5
    print("\n" + out)
    with pytest.raises(UnknownCustomerError, match="no record"):
        run_tool(settings, ["customer", "12345", "--changes", "0"])


def test_models_lists_versions_and_marks_the_live_one(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    fitted = bootstrap_simulated(settings, redis_client, tmp_path)
    keys = Keys(settings.redis.key_prefix)
    second = fitted.snapshot.model_copy(update={"version": 2, "quality": {"silhouette": 0.5}})
    write_version(redis_client, keys, second)
    _, out = run_tool(settings, ["models", "--json"])
    models = [json.loads(line) for line in out.splitlines()]
    assert [(m["version"], m["current"]) for m in models] == [(1, True), (2, False)]
    assert models[0]["k"] == 4 and models[0]["training_end"].startswith("2011-03-31")
    assert "silhouette" in models[0]["metrics"]
    assert models[0]["lineage"]["source"] == "bootstrap" and models[0]["lineage"]["new_segment_ids"] == [0, 1, 2, 3]
    activate(redis_client, keys, second, live_stats(redis_client, keys, fitted.snapshot))
    _, out = run_tool(settings, ["models"])
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["version", "live"]
    assert lines[2].startswith("v1 ") and "*" not in lines[2]
    assert lines[3].split()[:2] == ["v2", "*"], out
    print("\n" + out)
