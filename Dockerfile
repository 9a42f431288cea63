# The serving image: the web app and API on ONNX Runtime, with the shipped model; no torch.
#
#   docker build -t emnist-draw .
#   docker run -p 8000:8000 emnist-draw                # http://localhost:8000
#   docker run -p 8000:8000 -v emnist-data:/data emnist-draw --workers 2
#
# Arguments after the image name go to `emnist-draw serve`. The corrections database is SQLite in
# the /data volume, or PostgreSQL when DATABASE_URL is set (compose.yaml).
#
# BASE: any Debian-like image with python/pip first on PATH. `make docker-test` builds this file
# for real on a stand-in for python:3.11-slim (tests/docker/make_base.sh: no registry there) and
# runs the image (tests/docker/test_image.py); tests/test_deploy.py checks its shape.
ARG BASE=python:3.11-slim
FROM ${BASE}

# ORT_DISABLE_TELEMETRY: recent onnxruntime wheels for Linux report usage to Microsoft (1DS) and
# keep a device id in ~/.cache unless it is set; a served app sends nothing anywhere.
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EMNIST_DRAW_DATA=/data \
    ORT_DISABLE_TELEMETRY=1

# A user without rights on the code; the only place it writes is the data volume (and the scratch
# dirs every image has, /tmp). No home: nothing there to keep.
RUN useradd --no-create-home --home-dir /nonexistent --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir /data && chown app:app /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY emnist_draw ./emnist_draw
# The Makefile's serving install (`make run`), plus the postgres extra: the PostgreSQL driver that
# DATABASE_URL needs. Base dependencies only otherwise: no torch, no test tools.
RUN pip install -q --upgrade pip \
    && pip install -q -e '.[postgres]' \
    && python -m compileall -q emnist_draw

USER app
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["emnist-draw", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD []
