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
# the missing packages with apt-get (as root, or through sudo) and fails
# with a clear message when that is not possible.
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

if [ "${#missing_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif have sudo && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-ha: ${missing_apt[*]} missing and not root (no passwordless sudo)." >&2
        echo "install-ha: run as root: apt-get install ${missing_apt[*]}" >&2
        exit 1
    fi
    if ! have apt-get; then
        echo "install-ha: apt-get not found; install ${missing_apt[*]} by hand." >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get update -qq >/dev/null; then
        echo "install-ha: apt-get update failed." >&2
        exit 1
    fi
    # --no-install-recommends: the engine and the agents, not fence-agents'
    # hundreds of hardware drivers nor a running init system.
    # policy-rc.d 101: the packages' postinst must not try to start daemons.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod +x "$policy"
        created_policy=1
    fi
    rc=0
    $SUDO apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null || rc=$?
    [ "$created_policy" -eq 1 ] && $SUDO rm -f "$policy"
    if [ "$rc" -ne 0 ]; then
        echo "install-ha: apt-get install ${missing_apt[*]} failed." >&2
        exit 1
    fi
    echo "install-ha: installed ${missing_apt[*]}."
fi

for tool in corosync pacemakerd crm crm_mon crm_attribute cibadmin stonith_admin modprobe ip unshare nsenter ping socat jq; do
    if ! have "$tool" && [ ! -x "/usr/sbin/$tool" ]; then
        echo "install-ha: $tool still missing after install." >&2
        exit 1
    fi
done
