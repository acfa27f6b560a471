#!/usr/bin/env bash
# Installs Debian's `fuse3` for the storage power-cut tests
# (storage/tests/powercut_fs/): its `fusermount3` mounts the test file
# system when not running as root (as root, the tests mount with mount(2)
# and need only /dev/fuse). Idempotent and quiet: does nothing when
# fusermount3 is present; otherwise installs it with apt-get (as root, or
# through sudo) and fails with a clear message when that is not possible.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if ! have fusermount3; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif have sudo && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-fuse: fuse3 missing and not root (no passwordless sudo)." >&2
        echo "install-fuse: run as root: apt-get install fuse3" >&2
        exit 1
    fi
    if ! have apt-get; then
        echo "install-fuse: apt-get not found; install fuse3 by hand." >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get update -qq >/dev/null; then
        echo "install-fuse: apt-get update failed." >&2
        exit 1
    fi
    if ! $SUDO apt-get install -y -qq --no-install-recommends fuse3 >/dev/null; then
        echo "install-fuse: apt-get install fuse3 failed." >&2
        exit 1
    fi
    if ! have fusermount3; then
        echo "install-fuse: fusermount3 still missing after install." >&2
        exit 1
    fi
    echo "install-fuse: $(fusermount3 --version 2>&1 | head -1) installed."
fi

# Not fatal here: the power-cut tests fail with the reason themselves.
if [ ! -e /dev/fuse ]; then
    echo "install-fuse: /dev/fuse is missing: the storage power-cut tests will fail (FUSE unavailable)." >&2
fi
