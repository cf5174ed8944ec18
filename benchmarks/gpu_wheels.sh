#!/usr/bin/env bash
# Wheels for a GPU machine that has torch and Lightning but no network (Python 3.12, x86-64):
# soundstage's own wheel and those of its dependencies that such images lack, into DIR (default .whl).
# There: pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl && export PYTHONPATH=/tmp/site
#
#   benchmarks/gpu_wheels.sh [DIR] [PYTHON_VERSION=3.12]
set -eu
cd "$(dirname "$0")/.."
dir=${1:-.whl}; pyver=${2:-3.12}
py=${PYTHON:-python3}; [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && py=.venv/bin/python  # needs setuptools (the dev venv)
mkdir -p "$dir"
rm -f "$dir"/soundstage-*.whl
$py -m pip wheel -q --no-deps --no-build-isolation -w "$dir" .
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
for pkg in webdataset braceexpand omegaconf antlr4-python3-runtime soundfile cffi pycparser soxr espeakng-loader anyascii; do
  $py -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
    "${platforms[@]}" --platform manylinux2014_x86_64 -d "$dir" "$pkg"
done
ls "$dir"
