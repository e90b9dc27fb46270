"""The drift monitor loop: observations of every worker in, incidents out, state committed per poll.

Per poll: drop shares already seen (by source partition and offset), feed the
rest to the :class:`~worker.drift.DriftEngine` of the live model version,
advance it to the low watermark of the source partitions (no later share can be
older), commit engine state, offset and alerts in one fenced Redis step, then
publish the alerts (key = incident id). With policy ``refresh``, an opened incident
refits the model (:func:`worker.refresh.refit.refit`); a new model version, from
here or from ``python -m worker refresh``, starts a new engine whose references
are the new model's. Incidents belong to the engine that opened them: when an
engine is replaced, every incident still open in ``drift:incidents`` that the live
engine does not hold is closed with an alert saying why, so ``alerts --open`` lists
only incidents that can still close.
"""

from __future__ import annotations

import logging
import signal
from datetime import datetime
from types import FrameType
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from pydantic import ValidationError

from shared.contracts.drift_alert import DriftAlert
from shared.contracts.drift_observation import DriftObservations
from shared.contracts.model_snapshot import ModelSnapshot
from shared.exceptions import FencedError
from shared.kafka_clients import ensure_topics, make_consumer, make_producer
from shared.redis_client import make_redis
from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.model_store import load_version, require_current
from worker.drift import DriftEngine, DriftSettings, calibration
from worker.drift.engine import STATE_FORMAT
from worker.drift.reference import load_reference, load_scorings
from worker.drift_service.metrics import DriftMetrics
from worker.drift_service.settings import MonitorSettings
from worker.drift_service.store import MonitorStore
from worker.observability.health import Health
from worker.observability.server import ObservabilityServer
from worker.refresh.refit import refit
from worker.refresh.settings import RefreshSettings

log = logging.getLogger("worker.monitor")
SUPERSEDED_ACTION = (
    "none: the drift monitor now compares against model v{version} and closed this incident of the "
    "previous model; a drift that lasts opens a new incident"
)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.monitor.owned = False
        self.monitor.health.revoked([0])

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            self.monitor.resume()


class DriftMonitor:
    """The one active drift monitor of a deployment."""

    def __init__(
        self,
        settings: Settings,
        options: MonitorSettings,
        drift: DriftSettings,
        refresh: RefreshSettings,
    ) -> None:
        self.settings = settings
        self.options = options
        self.drift = drift
        self.refresh = refresh
        self.topic = settings.topics.drift_observations
        self.keys = Keys(settings.redis.key_prefix)
        self.redis = make_redis(settings.redis)
        self.store = MonitorStore(self.redis, self.keys, options.recent_alerts)
        ensure_topics(settings.kafka, [self.topic], 1, settings.topics.replication_factor)
        ensure_topics(
            settings.kafka,
            [settings.topics.drift_alerts],
            settings.topics.partitions,
            settings.topics.replication_factor,
        )
        self.producer = make_producer(settings.kafka)
        self.consumer: KafkaConsumer = make_consumer(settings.kafka, options.group_id, max_poll_records=1_000)
        reference = load_reference(self.redis, self.keys)
        self.references = None if reference is None else calibration.from_invoices(reference, drift)
        self.activity = None if reference is None else calibration.activity_from_invoices(reference, drift)
        self.scorings = load_scorings(self.redis, self.keys)
        self.engine = self._engine(require_current(self.redis, self.keys))
        self.offset = -1
        self.sources: dict[str, int] = {}
        self.times: dict[str, datetime] = {}
        self.owned = False
        self.stopping = False
        self.published = 0
        self.refreshes = 0
        self.metrics = DriftMetrics()
        self.health = Health(liveness_timeout_s=60.0)
        self.server = (
            ObservabilityServer(options.metrics_port, self.metrics.registry, self.health, options.metrics_host)
            if options.metrics_port
            else None
        )

    # -- state -------------------------------------------------------------------------------
    def resume(self) -> None:
        """On assignment: load the stored state, seek to its offset, publish what was left unsent."""
        self.offset, state = self.store.load()
        if state is not None:
            snapshot = load_version(self.redis, self.keys, state["model_version"])
            if state["engine"].get("format") == STATE_FORMAT:
                self.engine = DriftEngine.from_state_dict(snapshot, self.drift, state["engine"])
            else:  # an engine of an earlier release: a fresh one; its open incidents are closed below
                log.warning("drift state of format %s: starting a new engine", state["engine"].get("format"))
                self.engine = self._engine(snapshot)
            self.sources = dict(state["sources"])
            self.times = {key: datetime.fromisoformat(value) for key, value in state["times"].items()}
        tp = TopicPartition(self.topic, 0)
        if self.offset >= 0:
            self.consumer.seek(tp, self.offset)
        else:
            self.consumer.seek_to_beginning(tp)
        # An engine switch whose closes were not committed (a crash in between), or incidents
        # left open by a monitor from before these closes: closed now, in a step of their own.
        closes = self._close_orphans()
        if closes:
            self._commit(self.offset, closes)  # publishes the outbox too
        else:
            self._publish()
        self.owned = True
        self.health.assigned([0])
        log.info("drift monitor resumed at offset %d (model v%d)", self.offset, self.engine.context.model_version)

    def _state(self) -> dict[str, Any]:
        return {
            "model_version": self.engine.context.model_version,
            "engine": self.engine.state_dict(),
            "sources": self.sources,
            "times": {key: value.isoformat() for key, value in self.times.items()},
        }

    # -- the loop ------------------------------------------------------------------------------
    def stop(self, signum: int = 0, frame: FrameType | None = None) -> None:
        self.stopping = True

    def run(self, until_caught_up: bool = False) -> None:
        """Consume until stopped (or, with ``until_caught_up``, until the observations topic is read)."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        try:
            while not self.stopping:
                polled = self.consumer.poll(timeout_ms=self.options.poll_timeout_ms)
                self.health.polled()
                records = [record for batch in polled.values() for record in batch]
                if records and self.owned:
                    self.process(records)
                elif until_caught_up and self.owned and self._caught_up():
                    break
        finally:
            self.consumer.close()
            self.producer.close()
            if self.server is not None:
                self.server.close()

    def _caught_up(self) -> bool:
        tp = TopicPartition(self.topic, 0)
        return self.offset >= self.consumer.end_offsets([tp])[tp]

    def process(self, records: list) -> None:
        """Feed one poll's shares, evaluate, commit, publish."""
        expect = self.offset
        version = self.engine.context.model_version
        for record in records:
            if record.offset < self.offset:
                continue
            self.offset = record.offset + 1
            try:
                share = DriftObservations.model_validate_json(record.value)
            except ValidationError as exc:
                log.error("unreadable drift observation at offset %d: %s", record.offset, exc.errors()[0]["msg"])
                continue
            self._feed(share)
        alerts = self._close_orphans() if self.engine.context.model_version != version else []
        alerts += self.engine.advance(min(self.times.values())) if self.times else []
        if not self._commit(expect, alerts):
            return
        if self.refresh.policy == "refresh" and any(alert.state == "open" for alert in alerts):
            self._refresh(max(self.times.values()))

    def _commit(self, expect: int, alerts: list[DriftAlert]) -> bool:
        """Commit state, offset and ``alerts`` in one fenced step and publish; False when fenced (reloaded)."""
        try:
            self.store.commit(expect, self.offset, self._state(), alerts)
        except FencedError:
            log.warning("another drift monitor took over; reloading")
            self.resume()
            return False
        self._publish()
        self.metrics.alerted(alerts, {name: int(machine.is_open) for name, machine in self.engine.machines.items()})
        for alert in alerts:
            log.info("drift %s %s (%s): %s=%.4f (threshold %.4f)", alert.monitor, alert.state, alert.incident_id,
                     alert.statistic, alert.value, alert.threshold)  # fmt: skip
        return True

    def _close_orphans(self) -> list[DriftAlert]:
        """A ``closed`` alert for every incident open in Redis that the live engine does not hold.

        An incident is decided by the engine that opened it (its references, its
        families' hysteresis); once that engine is replaced nothing can close it, and
        a drift that lasts opens an incident of the new engine. The closing alert is
        the incident's latest alert, closed, its contributors inactive.
        """
        version = self.engine.context.model_version
        closes = []
        for latest in self.store.open_incidents():
            if latest.incident_id == self.engine.open_incident_id:
                continue
            closes.append(
                latest.model_copy(
                    update={
                        "alert_id": f"{latest.incident_id}-closed-superseded-v{version}",
                        "state": "closed",
                        "severity": "info",
                        "contributors": [c.model_copy(update={"active": False}) for c in latest.contributors],
                        "suggested_action": SUPERSEDED_ACTION.format(version=version),
                    }
                )
            )
        return closes

    def _feed(self, share: DriftObservations) -> None:
        source = str(share.source_partition)
        if share.end_offset <= self.sources.get(source, -1):
            return
        self.sources[source] = share.end_offset
        self.metrics.observed(len(share.invoices), len(share.assignments))
        previous = self.times.get(source)
        self.times[source] = share.partition_time if previous is None else max(previous, share.partition_time)
        if share.model_version > self.engine.context.model_version:
            self._new_engine(share.model_version)
        for invoice in share.invoices:
            self.engine.observe_invoice(
                invoice.event_time, invoice.customer_id, invoice.order_value, invoice.lines, invoice.days_since_previous
            )
        if share.model_version == self.engine.context.model_version:
            for row in share.assignments:
                self.engine.observe_assignment(row.event_time, row.customer_id, row.vector)

    def _new_engine(self, version: int) -> None:
        """A new model version: its references replace the old (the caller closes the old engine's incidents)."""
        self.engine = self._engine(load_version(self.redis, self.keys, version))
        log.info("drift monitor now compares against model v%d", version)

    def _engine(self, snapshot: ModelSnapshot) -> DriftEngine:
        """An engine for ``snapshot``, calibrated on the bootstrap's reference invoices and scorings when stored.

        Without the invoices (a bootstrap from before they were stored) the invoice
        thresholds come from the snapshot's bins and the customer-activity family is
        off; without the scorings the segment family is off. The segment family's
        reference depends on the snapshot (its centroids and transform), so it is
        calibrated per engine.
        """
        segments = (
            None if self.scorings is None else calibration.segments_from_scorings(snapshot, *self.scorings, self.drift)
        )
        return DriftEngine(snapshot, self.drift, self.references, activity=self.activity, segments=segments)

    def _refresh(self, as_of: datetime) -> None:
        result = refit(self.redis, self.keys, as_of, self.refresh)
        self.refreshes += 1
        log.warning(
            "drift incident opened: model refreshed to v%d (kept ids %s, new %s, retired %s)",
            result.snapshot.version, result.kept, result.created, result.retired,
        )  # fmt: skip
        self._new_engine(result.snapshot.version)
        self._commit(self.offset, self._close_orphans())

    def _publish(self) -> None:
        pending = self.store.outbox()
        for text in pending:
            alert = DriftAlert.model_validate_json(text)
            self.producer.send(self.settings.topics.drift_alerts, key=alert.incident_id.encode(), value=text.encode())
        self.producer.flush()
        if pending:
            self.store.clear_outbox(len(pending))
            self.published += len(pending)
