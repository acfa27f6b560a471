#!/usr/bin/env bash
# Installs Debian's headless browser for tests/browser.rs: `chromium` and
# `chromium-driver` (chromedriver). Idempotent and quiet: does nothing when
# both are present; otherwise installs them with apt-get (as root, or through
# sudo) and fails with a clear message when that is not possible.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if [ -x /usr/bin/chromium ] && have chromedriver; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif have sudo && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "install-browser: chromium/chromium-driver missing and not root (no passwordless sudo)." >&2
    echo "install-browser: run as root: apt-get install chromium chromium-driver" >&2
    exit 1
fi

if ! have apt-get; then
    echo "install-browser: apt-get not found; install chromium and chromedriver by hand." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq >/dev/null; then
    echo "install-browser: apt-get update failed." >&2
    exit 1
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; then
    echo "install-browser: apt-get install chromium chromium-driver failed." >&2
    exit 1
fi

if [ ! -x /usr/bin/chromium ] || ! have chromedriver; then
    echo "install-browser: chromium or chromedriver still missing after install." >&2
    exit 1
fi
echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) and $(chromedriver --version 2>/dev/null | head -1) installed."
