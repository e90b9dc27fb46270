"""The read-only HTTP API and its dashboard: composed here, served by :mod:`worker.api.server`.

Every Redis read goes through :mod:`worker.queries.state` (as the CLI's), run on an
asyncio client, so a request never waits for a thread. The segment-changes topic
is read by one background reader (:mod:`worker.api.changes`). Responses are the
pydantic views of :mod:`worker.queries.views`; errors have one shape
(:mod:`worker.api.errors`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from typing import Annotated, Any, Literal

import redis
import redis.asyncio
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from shared.redis_client import make_async_redis
from shared.settings import Settings
from shared.state.keys import Keys
from worker.api import errors
from worker.api.changes import ChangeLog
from worker.api.errors import ApiError
from worker.api.progress import Progress
from worker.api.settings import ApiSettings
from worker.api.stream import change_events
from worker.queries import history, state
from worker.queries.plan import arun
from worker.queries.popularity import PopularityCache
from worker.queries.views import (
    CustomerView,
    Flow,
    IncidentView,
    ModelView,
    ProgressView,
    SegmentHistory,
    SegmentsView,
)

JSON = "application/json"
BEARER = HTTPBearer(auto_error=False, description="the value of SEG_API_TOKEN")


class Health(BaseModel):
    """``/healthz`` and ``/readyz``."""

    live: bool
    ready: bool
    redis: bool
    model_version: int | None
    changes_caught_up: bool
    detail: str


@dataclass
class Services:
    """What the endpoints read from, opened at startup and closed at shutdown."""

    redis: redis.asyncio.Redis
    keys: Keys
    snapshots: state.Snapshots
    popularity: PopularityCache
    changes: ChangeLog
    progress: Progress


Handler = Callable[..., Awaitable[Response]]


def _json(view: BaseModel | Sequence[BaseModel]) -> Response:
    """A view as JSON (already validated: built from the views, so FastAPI need not validate it again)."""
    if not isinstance(view, BaseModel):
        body = b"[" + b",".join(item.model_dump_json().encode() for item in view) + b"]"
    else:
        body = view.model_dump_json().encode()
    return Response(content=body, media_type=JSON)


def create_app(settings: Settings, options: ApiSettings) -> FastAPI:
    """The API for ``settings`` (Kafka, Redis, topics) served as ``options`` say."""
    services = Services(
        redis=make_async_redis(settings.redis),
        keys=Keys(settings.redis.key_prefix),
        snapshots=state.Snapshots(),
        popularity=PopularityCache(options.popularity_ttl_s),
        changes=ChangeLog(settings.kafka, settings.topics.segment_changes, options.change_buffer),
        progress=Progress(settings.kafka, settings.topics.invoices, options.end_offsets_ttl_s),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.changes.start()
        try:
            yield
        finally:
            services.changes.stop()
            await asyncio.to_thread(services.progress.close)
            await services.redis.aclose()

    app = FastAPI(
        title="live-segments API",
        version="1.0",
        description="Read-only: customers' segments, segments, models, drift incidents, and segment changes as "
        "server-sent events. Errors: {status, error, message}.",
        lifespan=lifespan,
    )
    errors.install(app)
    guarded = [Depends(_authorization(options))] if options.auth_required else []
    _data_routes(app, services, guarded)
    _stream_routes(app, services, guarded)
    _health_routes(app, services)
    return app


def _authorization(options: ApiSettings) -> Callable[..., Awaitable[None]]:
    token = options.token.get_secret_value().encode() if options.token else b""

    async def authorize(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token):
            raise ApiError(401, "unauthorized", "send the header Authorization: Bearer <the value of SEG_API_TOKEN>")

    return authorize


def _data_routes(app: FastAPI, s: Services, guarded: list) -> None:
    def get(path: str, model: object, tag: str, *statuses: int) -> Callable[[Handler], Handler]:
        return app.get(
            path, response_model=model, responses=errors.responses(*statuses), dependencies=guarded, tags=[tag]
        )

    @get("/customers/{customer_id}", CustomerView, "customers", 401, 404, 422, 503)
    async def customer(
        customer_id: str = Path(min_length=1, max_length=200, description="as in the data, e.g. 17850"),
        recommendations: int = Query(10, ge=0, le=100, description="products to recommend at most"),
    ) -> Response:
        """The published segment (id, name, description), features as of when, last change, recommendations."""
        view = await arun(s.redis, state.customer(s.keys, s.snapshots, customer_id, recommendations, s.popularity))
        view.last_change = s.changes.last_change(customer_id)
        return _json(view)

    @get("/segments", SegmentsView, "segments", 401, 422, 503)
    async def segments(products: int = Query(10, ge=0, le=100, description="top products per segment")) -> Response:
        """Every segment of the live model: live size, profile in the features' units, top products."""
        return _json(await arun(s.redis, state.segments(s.keys, s.snapshots, products, s.popularity)))

    @get("/segments/history", SegmentHistory, "segments", 401, 422, 503)
    async def segment_history(weeks: int = Query(8, ge=1, le=104, description="event-time weeks back")) -> Response:
        """Published sizes week by week and the flow between segments, over the changes the API holds."""
        snapshot = await arun(s.redis, s.snapshots.require_current(s.keys))
        published = await arun(s.redis, state.published_segments(s.keys))
        changes = history.distinct_changes(s.changes.recent())
        if changes:
            since = changes[-1].event_time - timedelta(weeks=weeks)
            changes = [change for change in changes if change.event_time >= since]
        sizes = history.size_history(changes, published)
        names = {ref.id: ref.name for c in changes for ref in (c.previous, c.current) if ref is not None}
        return _json(
            SegmentHistory(
                model_version=snapshot.version,
                names=names | {segment.id: segment.name for segment in snapshot.segments},
                times=sizes.times,
                sizes=sizes.sizes,
                flows=[
                    Flow(source=source, target=target, changes=count)
                    for (source, target), count in sorted(
                        history.transitions(changes).counts.items(), key=lambda item: (item[0][0] is not None, item)
                    )
                ],
                changes=len(changes),
            )
        )

    @get("/models", list[ModelView], "models", 401, 503)
    async def models() -> Response:
        """Every stored model version with metrics and lineage, oldest first."""
        return _json(await arun(s.redis, state.models(s.keys, s.snapshots)))

    @get("/models/{version}", ModelView, "models", 401, 404, 422, 503)
    async def model(version: int = Path(ge=1, le=2**31, description="model version")) -> Response:
        """One model version with metrics and lineage."""
        return _json(await arun(s.redis, state.model(s.keys, s.snapshots, version)))

    @get("/incidents", list[IncidentView], "incidents", 401, 422, 503)
    async def incidents(
        state_filter: Literal["open", "all"] = Query(
            "open", alias="state", description="open, or all the incidents among the recent alerts kept"
        ),
    ) -> Response:
        """Drift incidents: families, statistics against thresholds, suggested action; latest first."""
        return _json(await arun(s.redis, state.incidents(s.keys, state_filter)))

    @get("/incidents/{incident_id}", IncidentView, "incidents", 401, 404, 422, 503)
    async def incident(incident_id: str = Path(min_length=1, max_length=200)) -> Response:
        """One drift incident by id."""
        return _json(await arun(s.redis, state.incident(s.keys, incident_id)))

    @get("/progress", ProgressView, "stream", 401, 503)
    async def progress() -> Response:
        """Consumer lag per partition of the invoices topic and rows applied per second."""
        applied, event_time = await arun(s.redis, state.applied_offsets(s.keys, s.progress.topic))
        ends = await asyncio.to_thread(s.progress.end_offsets)
        return _json(s.progress.view(applied, ends, event_time))


def _stream_routes(app: FastAPI, s: Services, guarded: list) -> None:
    events: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}
    }

    @app.get(
        "/changes/stream",
        response_class=StreamingResponse,
        responses=events | errors.responses(401),
        dependencies=guarded,
        tags=["stream"],
    )
    async def change_stream(
        request: Request,
        last_event_id: str | None = Header(None, description="resume after this event (its id)"),
    ) -> StreamingResponse:
        """Segment changes as server-sent events, each (customer, sequence) once; resume with Last-Event-ID."""
        events = change_events(s.changes, last_event_id, request.is_disconnected)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    dashboard = resources.files("worker.api").joinpath("dashboard.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        """The live dashboard: one page, everything inline, data from this API only."""
        return HTMLResponse(dashboard)


def _health_routes(app: FastAPI, s: Services) -> None:
    async def check() -> Health:
        try:
            await s.redis.ping()
            reachable = True
            snapshot = await arun(s.redis, s.snapshots.current(s.keys))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            reachable, snapshot = False, None
        live = s.changes.alive
        ready = s.changes.healthy and reachable and snapshot is not None and s.changes.caught_up
        problems = [
            text
            for failed, text in (
                (not live, "the segment-change reader stopped"),
                (s.changes.error is not None, f"the segment-change reader retries after: {s.changes.error}"),
                (not reachable, errors.REDIS_DOWN),
                (reachable and snapshot is None, "no live model yet: run python -m worker bootstrap"),
                (live and not s.changes.caught_up, "still reading the segment-change topic"),
            )
            if failed
        ]
        return Health(
            live=live,
            ready=ready,
            redis=reachable,
            model_version=None if snapshot is None else snapshot.version,
            changes_caught_up=s.changes.caught_up,
            detail="; ".join(problems) or "ok",
        )

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}}, tags=["health"])
    async def healthz(response: Response) -> Health:
        """200 while the process serves and its segment-change reader runs."""
        health = await check()
        response.status_code = 200 if health.live else 503
        return health

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}}, tags=["health"])
    async def readyz(response: Response) -> Health:
        """200 once Redis answers, a live model exists and the segment-change topic is read to its end."""
        health = await check()
        response.status_code = 200 if health.ready else 503
        return health
