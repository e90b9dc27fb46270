"""The drift monitor's state in Redis: one fenced step per poll.

Engine state, the consumed offset of the observations topic, the new alerts
(recent list, open incidents, outbox) are written by one Lua script, so a
restarted monitor resumes exactly where the stored state ends. The script
refuses the step when the stored offset is not the one this monitor started
from: another monitor instance has taken over.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from shared.contracts.drift_alert import DriftAlert
from shared.exceptions import FencedError
from shared.state.keys import Keys

_SCRIPT = """
local p = cjson.decode(ARGV[1])
local stored = redis.call('HGET', p.state_key, 'offset')
local current = -1
if stored then current = tonumber(stored) end
if current ~= p.expect then return {0, current} end
redis.call('HSET', p.state_key, 'offset', p.offset, 'state', p.state)
for _, alert in ipairs(p.alerts) do
  redis.call('LPUSH', p.recent_key, alert[3])
  redis.call('RPUSH', p.outbox_key, alert[3])
  if alert[2] == 'closed' then
    redis.call('HDEL', p.incidents_key, alert[1])
  else
    redis.call('HSET', p.incidents_key, alert[1], alert[3])
  end
end
redis.call('LTRIM', p.recent_key, 0, p.keep - 1)
return {1, p.offset}
"""


class MonitorStore:
    """Loads and commits the monitor's state; keeps recent alerts for readers."""

    def __init__(self, client: redis.Redis, keys: Keys, keep: int) -> None:
        self.client = client
        self.keys = keys
        self.keep = keep
        self._script = client.register_script(_SCRIPT)

    def load(self) -> tuple[int, dict[str, Any] | None]:
        """(next offset to consume or -1, saved state or None)."""
        offset, state = self.client.hmget(self.keys.drift_state, ["offset", "state"])
        return (-1 if offset is None else int(offset)), (json.loads(state) if state else None)

    def commit(self, expect: int, offset: int, state: dict[str, Any], alerts: list[DriftAlert]) -> None:
        """Store state and alerts atomically, or raise :class:`FencedError` and store nothing."""
        payload = {
            "state_key": self.keys.drift_state,
            "recent_key": self.keys.drift_alerts,
            "incidents_key": self.keys.drift_incidents,
            "outbox_key": self.keys.drift_outbox,
            "expect": expect,
            "offset": offset,
            "state": json.dumps(state, separators=(",", ":")),
            "alerts": [[alert.incident_id, alert.state, alert.model_dump_json()] for alert in alerts],
            "keep": self.keep,
        }
        ok, stored = self._script(args=[json.dumps(payload)])
        if not ok:
            raise FencedError(0, int(stored))

    def outbox(self) -> list[str]:
        return self.client.lrange(self.keys.drift_outbox, 0, -1)

    def clear_outbox(self, sent: int) -> None:
        """Drop the first ``sent`` alerts of the outbox (published and acknowledged)."""
        self.client.ltrim(self.keys.drift_outbox, sent, -1)

    def recent(self, limit: int) -> list[DriftAlert]:
        """The newest alerts first (for the CLI and dashboards)."""
        return [
            DriftAlert.model_validate_json(text) for text in self.client.lrange(self.keys.drift_alerts, 0, limit - 1)
        ]

    def open_incidents(self) -> list[DriftAlert]:
        """The latest alert of every open incident."""
        return [DriftAlert.model_validate_json(text) for text in self.client.hvals(self.keys.drift_incidents)]
