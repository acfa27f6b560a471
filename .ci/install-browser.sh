#!/usr/bin/env bash
# Installs Debian's headless browser for tests/browser.rs: `chromium` and
# `chromium-driver` (chromedriver). Idempotent and quiet: does nothing when
# both are present; otherwise installs them through .ci/apt-install.sh (as
# root, or through sudo), which fails with a clear message when that is not
# possible.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if [ -x /usr/bin/chromium ] && have chromedriver; then
    exit 0
fi

bash "$(dirname "$0")/apt-install.sh" install-browser chromium chromium-driver

if [ ! -x /usr/bin/chromium ] || ! have chromedriver; then
    echo "install-browser: chromium or chromedriver still missing after install." >&2
    exit 1
fi
echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) and $(chromedriver --version 2>/dev/null | head -1) installed."
