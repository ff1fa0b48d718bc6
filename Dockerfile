# m2mgate container image: build a wheel, install it into a venv, copy only that venv into a
# slim Python runtime that runs as a non-root numeric user. Nothing at runtime needs a shell:
# the entrypoint is exec-form and the program is a console script.
#
#   docker build -t m2mgate .
#   docker run --rm -p 8080:8080 -p 9901:9901 -v "$PWD/my.yaml:/etc/m2mgate/config.yaml:ro" m2mgate
#
# The config must listen on 0.0.0.0 (or [::]) inside a container; see deploy/kubernetes.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.6.1
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m build --wheel --outdir /dist

FROM ${PYTHON_IMAGE} AS install
COPY --from=build /dist /dist
RUN python -m venv /opt/m2mgate \
    && /opt/m2mgate/bin/pip install --no-cache-dir /dist/*.whl \
    && /opt/m2mgate/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="m2mgate" \
      org.opencontainers.image.description="Machine-to-machine authentication gateway: verifies OAuth 2.0 client-credentials JWTs in front of any HTTP API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/m2mgate/m2mgate"
COPY --from=install /opt/m2mgate /opt/m2mgate
ENV PATH="/opt/m2mgate/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A numeric user (no /etc/passwd entry needed), so Kubernetes can verify runAsNonRoot.
USER 10001:10001
# 8080: the proxy; 9901: admin (/healthz, /readyz, /metrics).
EXPOSE 8080 9901
ENTRYPOINT ["m2mgate"]
CMD ["run", "--config", "/etc/m2mgate/config.yaml"]
