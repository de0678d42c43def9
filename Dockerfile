# Klanten API server image (README "Running in production").
#
#   docker build -t klanten-api .
#   docker run --rm --env-file klanten.env klanten-api migrate      # once per release, before serving
#   docker run -d --env-file klanten.env -p 8000:8000 klanten-api    # serve (2 workers)
#   docker run --rm --env-file klanten.env klanten-api check        # configuration and connections
#
# The code lives in /app and is installed into the virtual environment /opt/venv "in place" (pip -e):
# the server reads its OpenAPI document from /app/spec next to the packages. Both stages use the same
# base image, so the venv's interpreter links stay valid when /opt/venv is copied across.
ARG PYTHON_IMAGE=python:3.11-slim

# ---------- builder: dependencies and the project into /opt/venv ----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
RUN python -m venv /opt/venv
# dependencies first (own layer: rebuilt only when pyproject.toml changes); every one ships a wheel
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep=chr(10))" \
        > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt
COPY spec ./spec
COPY klanten_api ./klanten_api
COPY handlers ./handlers
COPY service ./service
COPY storage ./storage
COPY notificaties ./notificaties
RUN /opt/venv/bin/pip install --no-deps -e /app \
 && /opt/venv/bin/python -m compileall -q /app

# ---------- runtime: the venv and the code, nothing else; runs as an unprivileged user ----------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 klanten \
 && useradd --system --uid 10001 --gid klanten --home-dir /var/lib/klanten-api --create-home \
        --shell /usr/sbin/nologin klanten
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
# The working directory is the only writable place (the default SQLite file for a try-out lands here;
# production sets KLANTEN_DATABASE_URL to PostgreSQL). The code in /app and /opt/venv is read-only to the user.
WORKDIR /var/lib/klanten-api
USER 10001:10001
EXPOSE 8000
# python's urllib (slim has no curl), without any proxy from the environment
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8000/_health/live', timeout=4)"]
ENTRYPOINT ["klanten-api"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
