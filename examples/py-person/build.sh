#!/usr/bin/env bash
# Builds target/py-person.wasm with componentize-py (from PyPI, pinned in
# requirements.txt, in a virtualenv under target/). `--stub-wasi` replaces
# the WASI imports CPython links (filesystem, sockets) with trapping stubs:
# the standard library is in the component's memory image, and a transform
# may import only `log` and `config`.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p target
[ -x target/venv/bin/componentize-py ] || { python3 -m venv target/venv && target/venv/bin/pip install -q -r requirements.txt; }
rm -rf target/wit && cp -r ../../wit target/wit
target/venv/bin/componentize-py -d target/wit -w transform componentize --stub-wasi -p . -p ../../sdk/python app -o target/py-person.wasm
