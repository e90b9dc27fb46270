# One image for every command (replay, bootstrap, run, monitor, the tools): `live-segments COMMAND`.
# Build stage: the wheel (shared, producer, worker only). Runtime stage: the pinned runtime
# requirements and that wheel, as a non-root user; no compiler, tests, dev tools or test broker.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN pip install --no-cache-dir --disable-pip-version-check build==1.6.1
COPY pyproject.toml README.md ./
COPY shared shared
COPY producer producer
COPY worker worker
RUN python -m build --wheel --outdir /dist .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    SEG_PRODUCER_CHECKPOINT_DIR=/var/lib/live-segments/checkpoints \
    SEG_BOOTSTRAP_MODEL_FILE=/var/lib/live-segments/model.json
RUN groupadd --system --gid 10001 segments \
 && useradd --system --uid 10001 --gid segments --home-dir /app --shell /usr/sbin/nologin segments \
 && mkdir -p /app/out /var/lib/live-segments/checkpoints \
 && chown -R segments:segments /app /var/lib/live-segments
COPY requirements.txt /tmp/requirements.txt
RUN pip install --requirement /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/*.whl && rm -r /tmp/dist
USER segments
WORKDIR /app
VOLUME ["/var/lib/live-segments"]
ENTRYPOINT ["live-segments"]
CMD ["--help"]
