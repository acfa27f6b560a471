#!/usr/bin/env bash
# Installs Debian's `fuse3` for the storage power-cut tests
# (storage/tests/powercut_fs/): its `fusermount3` mounts the test file
# system when not running as root (as root, the tests mount with mount(2)
# and need only /dev/fuse). Idempotent and quiet: does nothing when
# fusermount3 is present; otherwise installs it through .ci/apt-install.sh
# (as root, or through sudo), which fails with a clear message when that is
# not possible.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if ! have fusermount3; then
    bash "$(dirname "$0")/apt-install.sh" install-fuse fuse3
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
