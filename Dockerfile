# syntax=docker/dockerfile:1
# The modelmon operator image:  docker build -t modelmon:0.1.0 .   (or make image)
#
# Two stages. The build stage turns the source into a wheel and installs it, with the
# data-source extras, into a virtual environment; every dependency comes as a binary
# wheel, so neither stage needs a compiler. The final stage is the same slim Python base
# with only that environment copied in: no pip cache, no wheel files, no build tools.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Extras baked into the image: object storage (S3) and SQL databases. Override with
# --build-arg EXTRAS=all for every source, or EXTRAS= for files and URLs only.
ARG EXTRAS=s3,sql

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ONLY_BINARY=:all: \
    PIP_NO_BINARY=modelmon \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# PIP_ONLY_BINARY makes a dependency without a wheel fail here instead of pulling in a
# compiler; the modelmon wheel itself is built from this source (PIP_NO_BINARY).
RUN python -m venv /opt/modelmon \
 && /opt/modelmon/bin/pip wheel --no-deps --wheel-dir /dist . \
 && /opt/modelmon/bin/pip install "$(ls /dist/modelmon-*.whl)${EXTRAS:+[$EXTRAS]}" \
 && /opt/modelmon/bin/pip uninstall --yes pip \
 && /opt/modelmon/bin/python -c "import modelmon.cli, kopf, kubernetes, numpy, scipy, pandas"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modelmon" \
      org.opencontainers.image.description="Kubernetes operator for ML model monitoring" \
      org.opencontainers.image.licenses="Apache-2.0"
# A named user for the uid the chart runs as, so that tools that look up the user work.
RUN groupadd --system --gid 65532 modelmon \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
            --shell /usr/sbin/nologin modelmon
COPY --from=build /opt/modelmon /opt/modelmon
# The root filesystem is read-only in the chart: no .pyc files, and HOME is the writable /tmp.
ENV PATH=/opt/modelmon/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp
# /metrics and /healthz + /readyz (MODELMON_METRICS_PORT, MODELMON_HEALTH_PORT).
EXPOSE 9090 8080
ENTRYPOINT ["modelmon", "run"]
