#!/usr/bin/env bash
# A real cluster on this one machine, from Debian's packages: a one-node SLURM (munge,
# slurmctld, slurmd with this machine's cores and memory, partition "debug") and a PostgreSQL
# server with a database and a password-authenticated role for studies, both on localhost.
# The tests that need them (and CI, through .ci/run) use these; on a machine without them they
# skip and name this script.
#
#   sudo scripts/local_cluster.sh          install what is missing, start what is stopped, print how to reach each
#   sudo scripts/local_cluster.sh --stop   stop them (the packages and the data stay)
#
# Idempotent: a second start installs, writes and starts nothing and takes a few seconds.
# It runs SLURM's daemons as root with proctrack/linuxproc and task/none, which needs no
# cgroups or systemd (containers, CI): a test cluster, not a production one. No accounting
# database: sacct is unavailable; finished jobs are listed in /var/log/slurm/jobcomp.log.
set -euo pipefail

URL_FILE=/etc/hparam-lab/postgres.url  # the study URL, password included: mode 600, root's (or sudo's user's)
ROLE=hparam_lab                        # PostgreSQL role and database
PARTITION=debug
SLURM_CONF=/etc/slurm/slurm.conf
MARK="# Written by hparam-lab's scripts/local_cluster.sh; it rewrites this file as the machine changes."

die() { echo "error: $*" >&2; exit 2; }
case "${1:-}" in
    "" | --stop) ;;
    *) die "unknown argument '$1'. Usage: $0 [--stop]" ;;
esac
[[ $(id -u) == 0 ]] || die "this script installs packages and starts services: run it as root, e.g.  sudo $0 ${1:-}"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
alive() { kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }  # the process a pid file names runs
as_postgres() { runuser -u postgres -- "$@"; }

postgres_cluster() {  # "VERSION NAME PORT STATUS" of that version's first cluster, if any
    pg_lsclusters -h 2>/dev/null | awk -v v="$1" '$1 == v {print $1, $2, $3, $4; exit}'
}
stop_slurm() {  # SIGTERM, as SLURM's daemons are stopped; then wait for them to go
    local pid_file
    for pid_file in /run/slurmd.pid /run/slurmctld.pid; do
        if alive "$pid_file"; then kill "$(cat "$pid_file")"; fi
        for _ in $(seq 100); do alive "$pid_file" || break; sleep 0.1; done
    done
}

if [[ ${1:-} == --stop ]]; then
    if alive /run/slurmctld.pid || alive /run/slurmd.pid; then stop_slurm && echo "slurm: slurmctld and slurmd stopped"; fi
    if alive /run/munge/munged.pid; then kill "$(cat /run/munge/munged.pid)" && echo "munge: munged stopped"; fi
    if command -v pg_lsclusters >/dev/null; then
        pg_lsclusters -h | while read -r version name port status _; do
            if [[ $status == online ]]; then pg_ctlcluster "$version" "$name" stop && echo "postgresql: $version/$name stopped"; fi
        done
    fi
    exit 0
fi

# --- packages ---------------------------------------------------------------------------------
missing=()
for package in munge slurm-wlm postgresql; do installed "$package" || missing+=("$package"); done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
    apt_install || { apt-get update -qq && apt_install; }  # no package lists yet, or stale ones
    echo "installed: ${missing[*]}"
fi
started=()

# --- munge: the key SLURM's daemons and commands authenticate with ---------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    started+=(munged)
fi

# --- slurm ---------------------------------------------------------------------------------------
node_line=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=… RealMemory=…: what this machine has
node=$(hostname -s)
wanted=$(cat <<EOF
$MARK
ClusterName=hparam-lab
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job waits cred_expire seconds before it may start again (default 120)
AuthInfo=cred_expire=20
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
JobRequeue=1
ReturnToService=2
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
$node_line
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
if [[ -e $SLURM_CONF ]] && ! head -n 1 "$SLURM_CONF" | grep -qxF "$MARK"; then
    die "$SLURM_CONF is not this script's (a real cluster's?): it is left as it is. Move it away to let the script write its own."
fi
if [[ ! -e $SLURM_CONF ]] || [[ $(cat "$SLURM_CONF") != "$wanted" ]]; then
    install -d /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
    printf '%s\n' "$wanted" >"$SLURM_CONF"
    stop_slurm  # daemons running with an older copy start again below with this one
fi
if ! alive /run/slurmctld.pid; then slurmctld && started+=(slurmctld); fi
if ! alive /run/slurmd.pid; then slurmd && started+=(slurmd); fi
for _ in $(seq 100); do  # the node registers within seconds of slurmd's start
    state=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
    [[ $state == idle || $state == mix || $state == alloc ]] && break
    sleep 0.2
done
[[ $state == idle || $state == mix || $state == alloc ]] ||
    die "slurm's node $node is '${state:-not known}' after 20 s; see /var/log/slurm/slurmctld.log and slurmd.log"

# --- postgresql --------------------------------------------------------------------------------
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
[[ -n $(postgres_cluster "$version") ]] || pg_createcluster "$version" main >/dev/null
read -r version cluster port status <<<"$(postgres_cluster "$version")"
if [[ $status != online ]]; then
    pg_ctlcluster "$version" "$cluster" start
    started+=("postgresql $version/$cluster")
fi
sql() { as_postgres psql -p "$port" -X -q -tA "$@"; }
password=$(sed -n 's|^postgresql://[^:]*:\([^@]*\)@.*|\1|p' "$URL_FILE" 2>/dev/null || true)
if [[ -z $password ]] || ! PGPASSWORD=$password PGCONNECT_TIMEOUT=5 \
        psql -h localhost -p "$port" -U "$ROLE" -d "$ROLE" -X -tAc 'SELECT 1' >/dev/null 2>&1; then
    password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    verb=$([[ $(sql -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'") == 1 ]] && echo ALTER || echo CREATE)
    # on stdin, so that the password shows in no process list
    sql <<<"$verb ROLE $ROLE WITH LOGIN PASSWORD '$password';"
    [[ $(sql -c "SELECT 1 FROM pg_database WHERE datname = '$ROLE'") == 1 ]] || as_postgres createdb -p "$port" -O "$ROLE" "$ROLE"
    install -d -m 0755 "$(dirname "$URL_FILE")"
    (umask 077 && printf 'postgresql://%s:%s@localhost:%s/%s\n' "$ROLE" "$password" "$port" "$ROLE" >"$URL_FILE")
    [[ -z ${SUDO_USER:-} ]] || chown "$SUDO_USER" "$URL_FILE"
    echo "postgresql: role and database $ROLE ready, its URL written to $URL_FILE"
fi

# --- what runs, and how to reach it ------------------------------------------------------------------
echo "started: ${started[*]:-nothing (all were running)}"
echo "slurm $(sinfo -V | cut -d' ' -f2): $(sinfo -h -o '%P %a %l %D %t %N' | head -n 1)  (sinfo, squeue, sbatch; logs in /var/log/slurm)"
echo "postgresql $version: postgresql://$ROLE:***@localhost:$port/$ROLE  (export HPARAM_LAB_STORAGE=\"\$(cat $URL_FILE)\")"
