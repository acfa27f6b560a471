#!/usr/bin/env bash
# Installs Debian's Linux HA stack for the failover test
# (scripts/ha-failover-test.sh, run by .ci/run): `corosync` (membership,
# Corosync 3), `pacemaker` (the resource manager, 2.1), `pacemaker-cli-utils`
# (`crm_mon`, `crm_resource`, `crm_verify`), `crmsh` (the `crm`
# shell that loads deploy/ha/edgecc.crm), `resource-agents` (IPaddr2,
# Filesystem, ping), `kmod` (the Filesystem agent calls modprobe),
# `iputils-ping` (the ping agent's probe), `iproute2`/`util-linux` for the
# network and mount namespaces, `socat` (publishes the lab's PBX and CRM
# emulators, which listen on loopback only, on the lab's LAN addresses)
# and `jq` (the test reads edgecc's, the PBX's and the CRM's JSON). Idempotent
# and quiet: does nothing when every tool is present; otherwise installs
# the missing packages through .ci/apt-install.sh (as root, or through
# sudo), which fails with a clear message when that is not possible.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

missing_apt=()
have corosync || missing_apt+=(corosync)
have pacemakerd || [ -x /usr/sbin/pacemakerd ] || missing_apt+=(pacemaker)
# crm_mon and crm_resource (the failover test's probes), crm_verify (the
# README's check): pacemaker-cli-utils, named in case pacemaker is present
# without it.
have crm_mon && have crm_resource && have crm_verify || missing_apt+=(pacemaker-cli-utils)
have crm || missing_apt+=(crmsh)
[ -x /usr/lib/ocf/resource.d/heartbeat/IPaddr2 ] || missing_apt+=(resource-agents)
have modprobe || [ -x /usr/sbin/modprobe ] || missing_apt+=(kmod)
have ip || missing_apt+=(iproute2)
have unshare && have nsenter || missing_apt+=(util-linux)
have curl || missing_apt+=(curl)
have ping || missing_apt+=(iputils-ping)
have socat || missing_apt+=(socat)
have jq || missing_apt+=(jq)

# --no-daemons: the packages' postinst must not start corosync or
# pacemaker here (the failover test starts them in its namespaces).
bash "$(dirname "$0")/apt-install.sh" --no-daemons install-ha "${missing_apt[@]}"

for tool in corosync pacemakerd crm crm_mon crm_attribute cibadmin stonith_admin modprobe ip unshare nsenter ping socat jq; do
    if ! have "$tool" && [ ! -x "/usr/sbin/$tool" ]; then
        echo "install-ha: $tool still missing after install." >&2
        exit 1
    fi
done
