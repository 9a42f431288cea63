# The serving image: the web app and API on ONNX Runtime, with the shipped model; no torch.
#
#   docker build -t emnist-draw .
#   docker run -p 8000:8000 emnist-draw                # http://localhost:8000
#   docker run -p 8000:8000 -v emnist-data:/data emnist-draw --workers 2
#
# Arguments after the image name go to `emnist-draw serve`. The corrections database is SQLite in
# the /data volume, or PostgreSQL when DATABASE_URL is set (compose.yaml). This image was not
# built where it was written (no Docker engine there): tests/test_deploy.py checks what can be
# checked without one, and its install step is `make run`'s, which the tests do run.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EMNIST_DRAW_DATA=/data

# A user without rights on the code; the only place it writes is the data volume.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
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
