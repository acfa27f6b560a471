#!/usr/bin/env bash
# Soak run of the storage power-cut test (storage/tests/power_cut_fs.rs,
# issue 14): the same test as in the suite, with more cuts, counting every
# failing cut instead of stopping at the first (a directory that no longer
# opens is replaced by a fresh one), then a tally by kind of failure. Exits
# non-zero if any cut failed. Needs FUSE (/dev/fuse; as root, or fuse3's
# fusermount3). The mount holds the directory in memory and sled keeps
# stale blob files (about 30 a cut here), so a directory that survives
# every cut grows: 100 such cuts took 5.5 min and ~350 MB.
#
#   bash scripts/power-cut-soak.sh              # 200 cuts
#   EDGECC_POWER_CUTS=1000 bash scripts/power-cut-soak.sh
#   EDGECC_POWER_CUT_SEED=123 ...               # replay a seed's timings
#   EDGECC_POWER_CUT_TEAR=0 ...                 # no torn writes
#   EDGECC_POWER_CUT_JOURNAL_NAMES=1 ...        # names durable at any fsync (ext4's journal)
#   EDGECC_POWER_CUT_KEEP_GOING=0 ...           # stop at the first failure
#   EDGECC_POWER_CUT_CONTROL=1 ...              # kills without power cuts
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGECC_POWER_CUTS="${EDGECC_POWER_CUTS:-200}"
export EDGECC_POWER_CUT_KEEP_GOING="${EDGECC_POWER_CUT_KEEP_GOING:-1}"
bash .ci/install-fuse.sh
exec cargo test --locked -p edgecc-storage --test tests \
    power_cut_fs::power_cuts_never_lose_acknowledged_changes \
    -- --exact --include-ignored --nocapture
