# MindRouter gateway. One image for every gateway process (docs/deployment.md):
#   API workers:   mindrouter serve --no-ui --workers N --host 0.0.0.0 --port 8000
#   the web UI:    mindrouter serve --host 0.0.0.0 --port 8000       (the default command; one process)
#   migrations:    mindrouter migrate
#   docker build -t mindrouter:0.1.0 .
# Everything is installed from the committed lock with hashes: uv (tools/uv.txt), the dependencies (uv.lock,
# wheels only) and the build backend that builds MindRouter itself (tools/build.txt).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

COPY tools/uv.txt tools/build.txt /tmp/tools/
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/tools/uv.txt

# The source lives at /app in both stages: the project is installed editable (as `pip install -e .` does),
# because migrations/ and alembic.ini are read from the source tree, next to the packages.
WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the lock changes. --no-build: wheels from
# the lock only, so no build step can pull an unpinned build dependency.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project --no-build

# Then MindRouter itself, built by the setuptools pinned in tools/build.txt (uv checks its hashes).
COPY . .
RUN uv pip install --python /opt/venv/bin/python --no-deps --build-constraints /tmp/tools/build.txt --editable . \
    && /opt/venv/bin/mindrouter --help >/dev/null


FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MINDROUTER_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/var/lib/mindrouter \
    LOG_FORMAT=json

RUN groupadd --system --gid 10001 mindrouter \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mindrouter --no-create-home \
        --shell /usr/sbin/nologin mindrouter \
    && install -d -o mindrouter -g mindrouter -m 0750 /var/lib/mindrouter

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app

USER 10001:10001
VOLUME ["/var/lib/mindrouter"]
EXPOSE 8000

# /readyz: 200 once the database answers at the schema this image expects; 503 (unhealthy) otherwise. The
# probe runs on loopback, so the answer also says why (docs/api.md, probes).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/readyz', timeout=4)"]

# Exec form, no shell in between: the server is PID 1 and receives SIGTERM itself (a graceful stop).
ENTRYPOINT ["mindrouter"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
