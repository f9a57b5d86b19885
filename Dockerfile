# examreg API image: `examreg serve` on :8000. The same image runs the other commands:
#   docker run --rm -e EXAMREG_DATABASE_URL=... IMAGE examreg migrate
#   docker run -e EXAMREG_DATABASE_URL=... -e EXAMREG_REDIS_URL=... IMAGE examreg writer
# EXAMREG_DATABASE_URL and EXAMREG_REDIS_URL are required at run time (README, configuration).
#
# Graceful shutdown: on SIGTERM the supervisor (engine/runtime/supervisor.py) stops its workers and
# waits up to 15 s before SIGKILL; uvicorn drains requests for up to 10 s. Docker's default stop
# timeout is 10 s, so give the container more: `docker stop --time 20`, compose
# `stop_grace_period: 20s`, Kubernetes `terminationGracePeriodSeconds: 20` (25 for the API, whose
# preStop pause comes first: deploy/, docs/deploy.md).

# -- builder: a virtualenv with the dependencies, then the package itself ----------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Only pyproject.toml first, so this layer is rebuilt when dependencies change, not the source.
COPY pyproject.toml ./
RUN python -c 'import pathlib, tomllib; \
deps = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]["dependencies"]; \
pathlib.Path("requirements.txt").write_text("\n".join(deps) + "\n")' \
    && pip install --no-cache-dir -r requirements.txt

# Then the package, installed like any wheel: templates, static files, SQL, Lua and the migrations
# ship inside it (pyproject's package-data), so nothing runs from a source tree or PYTHONPATH.
COPY README.md ./
COPY engine/ ./engine/
RUN pip install --no-cache-dir --no-deps .

# -- runtime ----------------------------------------------------------------------------------
FROM python:3.11-slim

# serve/writer set the children's PROMETHEUS_MULTIPROC_DIR to $EXAMREG_DATA_DIR/metrics
# (engine/runtime/launch.py, child_env); a data dir of /tmp makes that the same /tmp/metrics as
# below, and keeps every file the process tree writes out of /app, which the service user cannot
# write.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    EXAMREG_DATA_DIR=/tmp

RUN groupadd --system --gid 10001 examreg \
    && useradd --system --no-log-init --uid 10001 --gid examreg \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin examreg \
    && mkdir -p /tmp/metrics \
    && chown examreg:examreg /tmp/metrics

# The virtualenv holds the dependencies and examreg itself; owned by root, so the service cannot
# modify its own code.
COPY --from=builder /opt/venv /opt/venv

WORKDIR /app

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# Exec form: the supervisor is PID 1 and receives SIGTERM itself.
CMD ["python", "-m", "engine", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
