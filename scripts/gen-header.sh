#!/usr/bin/env bash
# Regenerates include/ddaebm.h from src/ffi/ with cbindgen (through tests/c_header.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
DDAEBM_BLESS_HEADER=1 cargo test -p ddaebm --test c_header -- committed_header_matches_generated
echo "wrote include/ddaebm.h"
