"""The popularity bucket of a stock code is the same in Python (seeding, readers) and in the commit script."""

from __future__ import annotations

import redis

from shared.state.keys import PRODUCT_BUCKET_LUA, PRODUCT_BUCKETS, product_bucket

CODES = ["85123A", "71053", "84406B", "22423", "POST", "M", "C2", "DOT", "BANK CHARGES", "gift_0001_40", "Ünïcødé £"]


def test_python_and_lua_put_every_code_in_the_same_bucket(redis_client: redis.Redis) -> None:
    each = "local out = {} for i, code in ipairs(ARGV) do out[i] = product_bucket(code) end return out"
    script = redis_client.register_script(PRODUCT_BUCKET_LUA + each)
    codes = CODES + [f"{n}{suffix}" for n in range(20_000, 24_000, 7) for suffix in ("", "A", "b")]
    assert script(args=codes) == [product_bucket(code) for code in codes]
    assert {product_bucket(code) for code in codes} == set(range(PRODUCT_BUCKETS))  # every bucket is used
