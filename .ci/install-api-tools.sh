#!/usr/bin/env bash
# Installs the API checkers the tests use, from PyPI, pinned:
# openapi-spec-validator (tests/openapi.rs: the published document is valid
# OpenAPI 3) and schemathesis (tests/api_fuzz.rs: a property-based fuzzer
# run against the daemon over HTTP). Idempotent: does nothing when the
# pinned versions are importable; fails with a clear message otherwise.
set -euo pipefail

SCHEMATHESIS=4.32.5
VALIDATOR=0.9.0

have_pinned() {
    python3 - "$SCHEMATHESIS" "$VALIDATOR" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("schemathesis"), version("openapi-spec-validator")) == (sys.argv[1], sys.argv[2]) else 1)
PY
}

if have_pinned; then
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "install-api-tools: python3 not found." >&2
    exit 1
fi
if ! python3 -m pip install -q --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS" "openapi-spec-validator==$VALIDATOR"; then
    echo "install-api-tools: pip install schemathesis openapi-spec-validator failed." >&2
    exit 1
fi
if ! have_pinned; then
    echo "install-api-tools: schemathesis $SCHEMATHESIS or openapi-spec-validator $VALIDATOR still missing." >&2
    exit 1
fi
echo "install-api-tools: schemathesis $SCHEMATHESIS and openapi-spec-validator $VALIDATOR installed."
