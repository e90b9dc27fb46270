"""One JSON shape for every error the API answers, with the status code that says what happened.

``{"status": 404, "error": "not_found", "message": "customer 1 has no record …: check …"}``

* 401 ``unauthorized``: no or a wrong bearer token;
* 404 ``not_found``: an unknown customer, model version, incident or path;
* 422 ``invalid_request``: a parameter out of its range;
* 503 ``unavailable``: Redis does not answer, or there is no live model yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from shared.exceptions import (
    ModelError,
    ServiceUnavailableError,
    UnknownCustomerError,
    UnknownIncidentError,
    UnknownModelVersionError,
)

REDIS_DOWN = "Redis does not answer: check that it runs and that SEG_REDIS__URL points at it, then retry"


class ErrorBody(BaseModel):
    """Every error response."""

    status: int
    error: str
    message: str


class ApiError(Exception):
    """An error to answer with :class:`ErrorBody`."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.body = ErrorBody(status=status, error=error, message=message)


def _answer(body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(), status_code=body.status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an endpoint may answer."""
    meaning = {401: "no or a wrong bearer token", 404: "not found", 422: "invalid parameter", 503: "unavailable"}
    return {status: {"model": ErrorBody, "description": meaning[status]} for status in statuses}


def install(app: FastAPI) -> None:
    """Map our exceptions, Redis outages, validation and routing errors onto :class:`ErrorBody`."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.body.status == 401 else None
        return _answer(exc.body, headers)

    @app.exception_handler(UnknownCustomerError)
    @app.exception_handler(UnknownModelVersionError)
    @app.exception_handler(UnknownIncidentError)
    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return _answer(ErrorBody(status=404, error="not_found", message=str(exc)))

    @app.exception_handler(ModelError)
    @app.exception_handler(ServiceUnavailableError)
    async def not_ready(_: Request, exc: Exception) -> JSONResponse:
        return _answer(ErrorBody(status=503, error="unavailable", message=str(exc)))

    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    async def redis_down(_: Request, exc: Exception) -> JSONResponse:
        return _answer(ErrorBody(status=503, error="unavailable", message=REDIS_DOWN))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _answer(ErrorBody(status=422, error="invalid_request", message=problems))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        error = "not_found" if exc.status_code == 404 else "http_error"
        return _answer(ErrorBody(status=exc.status_code, error=error, message=str(exc.detail)), exc.headers)
