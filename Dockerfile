# syntax=docker/dockerfile:1.7
# ccapi-monitor: the weekly Java land-clearing monitor as a batch container.
# Built in CI (no container engine on the dev machines); the install steps live in
# docker/install.sh so tests/test_image_install.py runs the very same commands.
# Decisions are explained in docs/deployment.md ("The container image").

# One base for both stages: the venv built in the first is copied verbatim into the second,
# so the interpreter path and ABI must match. Bump the patch version deliberately.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV=/usr/local/bin/uv \
    PYTHON=/usr/local/bin/python3.11

RUN pip install "uv==${UV_VERSION}"

WORKDIR /src
COPY docker/install.sh docker/install.sh
COPY requirements/runtime.lock requirements/runtime.lock
# Dependencies first: this layer is rebuilt only when the lock changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    sh docker/install.sh deps /opt/venv /src

COPY pyproject.toml README.md ./
COPY ccapi_monitor ccapi_monitor
RUN --mount=type=cache,target=/root/.cache/uv \
    sh docker/install.sh project /opt/venv /src

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="ccapi-monitor" \
      org.opencontainers.image.description="Weekly Sentinel-2 land-clearing and construction monitor for 29 regions of Java" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary" \
      org.opencontainers.image.documentation="docs/deployment.md" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# tini (a 20 kB init, not a compiler) runs as PID 1: it forwards SIGTERM/SIGINT to Python,
# reaps orphans, and passes the exit code through, so `docker stop` and ECS StopTask give
# the worker its SIGTERM path (callback CCAPI.Aborted, exit 143) instead of a SIGKILL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends "tini=0.19.0-1*" \
    && rm -rf /var/lib/apt/lists/*

# Fixed ids so volume permissions and the ECS task definition can name them.
# /tmp belongs to the worker (mode 1777 kept, so `docker run --user` with another uid works too).
RUN groupadd --system --gid 10001 ccapi \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin ccapi \
    && chown 10001:10001 /tmp \
    && chmod 1777 /tmp

# The task definition mounts an empty bind-mount volume on /tmp (the root filesystem is
# read-only). On Fargate platform 1.4.0+ such a volume is root-owned 0755 unless the image
# declares the same path as a VOLUME: ECS then copies the image's /tmp, owner and mode
# included, into the volume (docs/deployment.md, "Scratch space on Fargate").
VOLUME ["/tmp"]

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY run_weekly_java_monitor.py ./

# Only /tmp is written (reports, cache, HOME for Earth Engine/PROJ), so the image runs with
# a read-only root filesystem and a tmp volume. In production CCAPI_REPORTS_URI and
# CCAPI_CACHE_URI are s3:// URIs set by the task definition. No secret is ever baked in:
# GEE_SERVICE_ACCOUNT_KEY (JSON text) or GEE_SERVICE_ACCOUNT_KEY_FILE (a mounted file)
# arrive at run time.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    CCAPI_REPORTS_URI=/tmp/reports \
    CCAPI_CACHE_URI=/tmp/ccapi-cache

USER 10001:10001

# A batch job, not a server: its health is its exit code and the Step Functions heartbeat
# (ECS ignores image health checks anyway), so there is nothing for a probe to ask.
HEALTHCHECK NONE

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "run_weekly_java_monitor.py", "--auto-confirm"]
