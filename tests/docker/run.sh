#!/usr/bin/env bash
# `make docker-test`: the Docker image built and run for real (tests/docker/test_image.py).
# Starts dockerd if none answers (host networking only: no bridge, no iptables rules), builds the
# stand-in base image (make_base.sh, cached), runs the test, and on any exit removes the containers
# and volumes the test made and stops the daemon it started. Needs root. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
LABEL=emnist-draw-test  # the test labels all it makes, so it can be found even after a kill -9
started=""

cleanup() {
    local ids
    ids=$(docker ps -aq --filter "label=$LABEL" 2>/dev/null || true)
    if [ -n "$ids" ]; then docker rm -f $ids >/dev/null || true; fi
    ids=$(docker volume ls -q --filter "label=$LABEL" 2>/dev/null || true)
    if [ -n "$ids" ]; then docker volume rm -f $ids >/dev/null || true; fi
    # Earlier builds of the test image, untagged by this one (the layer cache stays).
    docker image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || true
    if [ -n "$started" ]; then
        kill "$started" 2>/dev/null || true
        for _ in $(seq 60); do kill -0 "$started" 2>/dev/null || break; sleep 0.5; done
        echo "docker-test: stopped the dockerd it started (log: build/docker/dockerd.log)"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # exit through the EXIT trap above

if ! docker info >/dev/null 2>&1; then
    mkdir -p build/docker
    # Its own session: a Ctrl-C or a kill of this script's process group leaves the daemon up for
    # the cleanup above, which then stops it.
    setsid dockerd --bridge=none --iptables=false --ip6tables=false >build/docker/dockerd.log 2>&1 &
    started=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    if ! docker info >/dev/null 2>&1; then
        echo "docker-test: dockerd did not start; the end of build/docker/dockerd.log:" >&2
        tail -n 20 build/docker/dockerd.log >&2
        exit 1
    fi
fi

tests/docker/make_base.sh
EMNIST_DRAW_DOCKER_TEST=1 "$PYTHON" -m pytest -q tests/docker "$@"
cat build/docker/image.json
