#!/usr/bin/env bash
# Builds edgecc for aarch64-unknown-linux-gnu without docker, with Debian's
# cross gcc, and runs it under qemu-user: proof that the ARM build works on
# a plain Debian 12 x86_64 machine.
#
#   scripts/arm-build.sh                   # build, then a short `edgecc demo` under qemu
#   scripts/arm-build.sh --storage-tests   # also the storage crate's tests under qemu
#
# Idempotent: it adds the rust target and the apt packages only when missing
# (apt needs root or sudo), and never updates the Rust toolchain (no
# `rustup update`, no cross). Environment: CARGO_TARGET_DIR (default: the
# workspace's target/, which already separates target artifacts under
# target/aarch64-unknown-linux-gnu/ and lets the host build scripts and proc
# macros be reused), EDGECC_ARM_DEMO_SECONDS (default 20).
#
# The C toolchain is needed for two things only: linking against the
# target's glibc, and ring (rustls' crypto), whose build script compiles C
# and pre-generated assembly for the target with the `cc` crate. No C
# library is linked besides glibc.
set -euo pipefail

TARGET=aarch64-unknown-linux-gnu
GCC=aarch64-linux-gnu-gcc
SYSROOT=/usr/aarch64-linux-gnu
PACKAGES=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
DEMO_SECONDS=${EDGECC_ARM_DEMO_SECONDS:-20}

die() {
    echo "arm-build: $*" >&2
    exit 1
}
say() { echo "arm-build: $*"; }

storage_tests=false
for arg in "$@"; do
    case "$arg" in
        --storage-tests) storage_tests=true ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) die "unknown argument $arg" ;;
    esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# 1. The Rust target (the standard library for aarch64), for the toolchain
#    already in use. `rustup target add` installs one component; it does
#    not update the toolchain.
if rustup target list --installed | grep -qx "$TARGET"; then
    say "rust target $TARGET: installed"
else
    say "rust target $TARGET: adding"
    rustup target add "$TARGET"
fi

# 2. Debian's cross gcc + aarch64 glibc, and qemu-user.
missing=()
for p in "${PACKAGES[@]}"; do
    if [ "$p" = qemu-user ] && { command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null; }; then
        continue
    fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
else
    say "apt packages: installed (${PACKAGES[*]})"
fi
QEMU=$(command -v qemu-aarch64 || command -v qemu-aarch64-static) || die "qemu-aarch64 not found"
command -v "$GCC" >/dev/null || die "$GCC not found"

# 3. The build. The linker and ring's C compiler are the cross gcc.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=$GCC
export CC_aarch64_unknown_linux_gnu=$GCC
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$QEMU -L $SYSROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
say "cargo build --release --locked --target $TARGET -p edgecc --bin edgecc (target dir $TARGET_DIR)"
start=$(date +%s)
cargo build --release --locked --target "$TARGET" -p edgecc --bin edgecc
say "build took $(( $(date +%s) - start )) s"
BIN=$TARGET_DIR/$TARGET/release/edgecc
[ -x "$BIN" ] || die "$BIN not built"
machine=$(aarch64-linux-gnu-readelf -h "$BIN" | sed -n 's/^ *Machine: *//p')
[ "$machine" = "AArch64" ] || die "$BIN is not an AArch64 ELF (Machine: $machine)"
size=$(stat -c %s "$BIN")
copy=$(mktemp)
cp "$BIN" "$copy"
aarch64-linux-gnu-strip --strip-all "$copy"
stripped=$(stat -c %s "$copy")
rm -f "$copy"
say "binary $BIN: AArch64 ELF, $size bytes as built ($(( size / 1024 )) KiB), $stripped bytes after strip --strip-all"
needed=$(aarch64-linux-gnu-readelf -d "$BIN" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
say "dynamic libraries: $needed"

# 4. The demo under qemu: simulated PBX, agents and callers, the CRM
#    emulator down for a while, then the demo's own checks.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary=$work/summary.json
outage_from=$(( DEMO_SECONDS / 3 ))
outage_to=$(( 2 * DEMO_SECONDS / 3 ))
cmd=("$QEMU" -L "$SYSROOT" "$BIN" demo --duration "$DEMO_SECONDS" --rate 5 --agents 20
     --crm-outage "$outage_from-$outage_to" --talk-ms 1000-4000 --patience-ms 5000-15000
     --answer-ms 200-1000 --wrap-up-ms 500 --drain-wait 120 --seed 3
     --data-dir "$work/data" --summary-json "$summary")
say "${cmd[*]}"
start=$(date +%s)
status=0
"${cmd[@]}" > "$work/demo.out" 2> "$work/demo.err" || status=$?
took=$(( $(date +%s) - start ))
tail -n 16 "$work/demo.out"
[ -s "$summary" ] || { cat "$work/demo.err" >&2; die "the demo wrote no summary (exit $status)"; }
field() { jq -r ".$1" "$summary"; }
total=$(field calls_total); accepted=$(field calls_accepted)
appended=$(field records_appended); delivered=$(field records_delivered); ok=$(field ok)
say "demo under qemu: exit $status in $took s; calls $total placed, $accepted answered; records $appended appended, $delivered delivered; checks ok=$ok"
[ "$status" -eq 0 ] || die "the demo's checks failed under qemu (exit $status): $(field failures)"
[ "$ok" = true ] && [ "$total" -gt 0 ] && [ "$accepted" -gt 0 ] && [ "$appended" -gt 0 ] \
    && [ "$delivered" -eq "$appended" ] || die "unexpected summary: $(cat "$summary")"

# 5. Optionally the storage crate's tests, run by cargo through qemu (the
#    runner above). Two tests re-execute their own binary as a child to
#    kill it; qemu-user cannot exec an aarch64 child without binfmt_misc,
#    so they are skipped when binfmt has no aarch64 entry.
if $storage_tests; then
    skip=()
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        skip=(--skip sigkill_never_loses_acknowledged_records --skip disk_full_hands_records_back)
        say "no binfmt_misc entry for aarch64: skipping the two tests that exec a child"
    fi
    say "cargo test --release --locked --target $TARGET -p edgecc-storage -- ${skip[*]}"
    cargo test --release --locked --target "$TARGET" -p edgecc-storage -- "${skip[@]}"
fi
say "OK"
