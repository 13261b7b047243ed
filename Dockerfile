# syntax=docker/dockerfile:1
# One image for every role of Rendezvous (docker-compose.yml, deploy/helm):
#   rendezvous init SPEC | rendezvous worker SPEC --role core|group:NAME|quality | rendezvous up SPEC
# Build: docker build -t rendezvous .   The package is installed from a wheel built in the first
# stage; the runtime stage holds no source tree, runs as an unprivileged user and checks itself.

FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY streams streams
COPY agents agents
COPY tables tables
COPY features features
COPY pipelines pipelines
COPY benchmarks benchmarks
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --gid 0 --create-home --home-dir /home/rendezvous rendezvous \
    && mkdir -p /data && chown 10001:0 /data && chmod g+rwX /data
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /home/rendezvous
# the core's REST port, a model group's probe port; /data is the store's local mirror (RDV_STORE)
ENV RDV_DATA_DIR=/data RDV_WEB_HOST=0.0.0.0 RDV_WEB_PORT=8080 RDV_PROBE_PORT=8081 PYTHONUNBUFFERED=1
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 CMD ["rendezvous", "probe"]
CMD ["rendezvous", "--help"]
