#!/bin/sh
# Install ccapi-monitor into a virtual environment exactly as the container image does.
#
# The Dockerfile's builder stage and tests/test_image_install.py both run this script, so
# the image and CI cannot install the project two different ways.
#
# Usage: docker/install.sh deps|project|all VENV_DIR [PROJECT_DIR]
#   deps     create VENV_DIR and install exactly requirements/runtime.lock (binary wheels only)
#   project  install PROJECT_DIR into VENV_DIR without resolving dependencies, then check them
#   all      both
# Environment:
#   UV      uv executable (default: uv on PATH)
#   PYTHON  interpreter the venv is built on (default: python3)
set -eu

usage="usage: $0 deps|project|all VENV_DIR [PROJECT_DIR]"
step=${1:?$usage}
venv=${2:?$usage}
project=${3:-.}
uv=${UV:-uv}

deps() {
    "$uv" venv --quiet --python "${PYTHON:-python3}" "$venv"
    # The lock pins every distribution. rasterio, pyproj, shapely and pyogrio wheels bundle
    # GDAL, PROJ and GEOS, so binary-only means no compiler and no system GDAL anywhere.
    # The one exception, jstyleson (pulled in by extruct), publishes only an sdist: it is a
    # single pure-Python module, so building it needs no compiler either.
    "$uv" pip sync --quiet --python "$venv/bin/python" --only-binary :all: \
        --no-binary jstyleson "$project/requirements/runtime.lock"
}

project() {
    # --no-deps: nothing outside the lock can enter; `uv pip check` then proves the lock
    # satisfies every requirement the project declares.
    "$uv" pip install --quiet --python "$venv/bin/python" --no-deps "$project"
    "$uv" pip check --python "$venv/bin/python"
}

case "$step" in
    deps) deps ;;
    project) project ;;
    all) deps && project ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
