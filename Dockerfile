# monitor as a container. It installs with the same `make install` the quick start and
# CI use (without the dev extra), runs as a non-root user, and checks /healthz.
#
#   docker build -t monitor .
#   docker run -v $PWD/config.toml:/etc/monitor/config.toml -e MONITOR_INGEST_TOKEN=... \
#     -p 8765:8765 monitor
#
# Listening beyond localhost requires MONITOR_INGEST_TOKEN: set [server] host = "0.0.0.0"
# in the mounted config together with the token.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MONITOR_CONFIG=/etc/monitor/config.toml

RUN apt-get update \
    && apt-get install -y --no-install-recommends make curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 monitor

WORKDIR /opt/monitor
COPY pyproject.toml Makefile README.md ./
COPY monitor ./monitor
COPY migrations ./migrations
RUN make install PYTHON=python3.11 EXTRAS= \
    && mkdir -p /etc/monitor /var/lib/monitor \
    && cp /opt/monitor/README.md /etc/monitor/README.md \
    && chown -R monitor:monitor /var/lib/monitor

ENV PATH=/opt/monitor/.venv/bin:$PATH
USER monitor
WORKDIR /var/lib/monitor
EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8765/healthz || exit 1
ENTRYPOINT ["monitor"]
CMD ["run"]
