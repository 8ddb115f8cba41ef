# syntax=docker/dockerfile:1
# The modelmon operator image:  docker build -t modelmon:0.1.0 .   (or make image)
#
# Two stages. The build stage turns the source into a wheel and installs it, with the
# data-source extras, into a virtual environment; every dependency comes as a binary
# wheel, so neither stage needs a compiler. The final stage is the same slim Python base
# with only that environment copied in: no pip cache, no wheel files, no build tools.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Extras baked into the image: object storage (S3 and GCS), SQL databases and DuckDB files.
# Override with a subset, e.g. --build-arg EXTRAS=sql, or EXTRAS= for files and URLs only.
ARG EXTRAS=s3,gcs,sql,duckdb

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS
# pipefail, so that a failure inside a pipe fails the step.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ONLY_BINARY=:all: \
    PIP_NO_BINARY=modelmon \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY constraints/test.txt ./constraints/test.txt
COPY operator ./operator
# PIP_ONLY_BINARY makes a dependency without a wheel fail here instead of pulling in a
# compiler; the modelmon wheel itself is built from this source (PIP_NO_BINARY). The
# constraints are the pins the test suite installs with (`make install`): the image gets
# the versions that were tested together (pins of packages it does not install are unused).
# Then a smoke test: the operator and the modules of every extra baked in must import; an
# extra without a line in the table (a typo such as gsc, which pip would only warn about)
# fails the build.
RUN python -m venv /opt/modelmon \
 && /opt/modelmon/bin/pip wheel --no-deps --wheel-dir /dist . \
 && /opt/modelmon/bin/pip install --constraint constraints/test.txt \
        "$(ls /dist/modelmon-*.whl)${EXTRAS:+[$EXTRAS]}" \
 && /opt/modelmon/bin/pip uninstall --yes pip \
 && /opt/modelmon/bin/python -c "import modelmon.cli, kopf, kubernetes, numpy, scipy, pandas" \
 && for extra in $(echo "$EXTRAS" | tr ',' ' '); do \
      case "$extra" in \
        s3) modules="s3fs boto3" ;; \
        gcs) modules="gcsfs" ;; \
        sql) modules="sqlalchemy psycopg" ;; \
        duckdb) modules="sqlalchemy duckdb duckdb_engine" ;; \
        all) modules="s3fs boto3 gcsfs sqlalchemy psycopg duckdb duckdb_engine" ;; \
        *) echo "no smoke test for extra $extra" >&2; exit 1 ;; \
      esac; \
      for module in $modules; do \
        /opt/modelmon/bin/python -c "import $module" || exit 1; \
      done; \
    done

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
EXPOSE 8000 8080
ENTRYPOINT ["modelmon", "run"]
