#!/usr/bin/env bash
# Install the Graphviz program `dot` that the drawing tests render with (idempotent, quiet;
# run as root on Debian). The Python package `graphviz` comes from the `test` extra.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v dot >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends graphviz >/dev/null
fi
