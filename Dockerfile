# Image of the pipeline worker (and of the simulator, with another command).
#   docker build -t pipeline .
#   docker run --rm -e PIPELINE_KAFKA_BOOTSTRAP=... -e PIPELINE_DATABASE_URL=... pipeline
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Only what the package build needs (README.md is the package's readme,
# LICENSE and NOTICE its license files); constraints.txt pins every dependency.
COPY pyproject.toml README.md LICENSE NOTICE constraints.txt ./
COPY pipeline ./pipeline
COPY simbank ./simbank
RUN pip install -c constraints.txt . \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin pipeline \
    && mkdir -p /app/data \
    && chown pipeline:pipeline /app/data

USER pipeline
# The web port (health, metrics) listens on the container's interfaces so that
# probes and Prometheus can reach it; the container network is the boundary.
# No PIPELINE_DEV_MODE here: the worker refuses to start without a real
# PIPELINE_PSEUDONYM_KEY (or PIPELINE_PSEUDONYM_KEY_FILE), see docs/security.md.
ENV PIPELINE_DATA_DIR=/app/data \
    PIPELINE_WEB_PORT=6066 \
    PIPELINE_WEB_BIND=0.0.0.0
EXPOSE 6066

# The worker answers 200 on /health once it has joined its group and loaded
# its reference tables. The slim image has no curl, so ask Python.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:6066/health', timeout=4)"]

CMD ["pipeline", "worker"]
