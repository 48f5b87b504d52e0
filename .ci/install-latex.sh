#!/usr/bin/env bash
# Install the renderers that the LaTeX tests use (idempotent, quiet; run as root on Debian):
#   - KaTeX (npm) renders every LaTeX fragment and Markdown $$ block with throwOnError,
#     as notebooks and Markdown hosts would;
#   - pdflatex (TeX Live base + amsmath) compiles the standalone LaTeX documents.
# tests/conftest.py finds KaTeX in $SYMGRAD_KATEX_DIR (default /opt/symgrad-katex).
set -euo pipefail
KATEX_DIR="${SYMGRAD_KATEX_DIR:-/opt/symgrad-katex}"
KATEX_VERSION="0.16.25"
export DEBIAN_FRONTEND=noninteractive

need_apt=()
command -v pdflatex >/dev/null 2>&1 || need_apt+=(texlive-latex-base)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ "${#need_apt[@]}" -gt 0 ]; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -f "$KATEX_DIR/node_modules/katex/package.json" ]; then
    mkdir -p "$KATEX_DIR"
    npm install --prefix "$KATEX_DIR" --no-audit --no-fund --silent \
        "katex@$KATEX_VERSION" >/dev/null 2>&1
fi
