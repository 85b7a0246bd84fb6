# syntax=docker/dockerfile:1
# provisiond's container image (docs/install-helm.md). Two stages: the first builds the wheel
# and installs it with the locked dependencies (constraints.txt) into a virtual environment;
# the second copies only that environment onto a slim Python base.
# Runs as the numeric non-root user 10001 and writes nothing outside its mounts: it works with
# readOnlyRootFilesystem (the chart mounts /tmp and /var/lib/provisiond as emptyDirs).
# No container engine runs in this repository's CI: tests/deploy/test_dockerfile.py lints this
# file with hadolint and runs its install steps (the wheel + constraints into a fresh venv).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/provisiond \
 && /opt/provisiond/bin/pip install --constraint constraints.txt /wheels/provisiond-*.whl \
 && /opt/provisiond/bin/python -m compileall -q /opt/provisiond/lib \
 && /opt/provisiond/bin/provisiond version

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="provisiond" \
      org.opencontainers.image.description="Keeps a Proxmox VE cluster and the Kubernetes nodes in its VMs the way a fleet spec declares" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/provisiond/provisiond" \
      org.opencontainers.image.documentation="https://github.com/provisiond/provisiond/blob/main/docs/install-helm.md"
COPY --from=build /opt/provisiond /opt/provisiond
ENV PATH=/opt/provisiond/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROVISIOND_LOG__FORMAT=json
USER 10001:10001
WORKDIR /var/lib/provisiond
EXPOSE 19339
ENTRYPOINT ["provisiond", "run"]
