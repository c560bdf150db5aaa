#!/usr/bin/env bash
# A real single-node Slurm for the executor tests: munge + slurmctld + slurmd from Debian's
# packages, a fake GRES of 4 GPUs (empty device files), one partition "debug".
#   bash .ci/slurm.sh install   # apt-get install (root), write /etc/slurm/{slurm,gres}.conf
#   bash .ci/slurm.sh start     # start the daemons, wait until the node is idle
#   bash .ci/slurm.sh stop      # stop only the daemons this script started (pid files)
set -euo pipefail
STATE=/run/scalecalc-slurm
HOST=$(hostname -s)

install() {
    if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
    fi
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log
    local cpus mem
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
    cat > /etc/slurm/slurm.conf <<CONF
ClusterName=scalecalc-ci
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=root
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
JobRequeue=1
SlurmdTimeout=30
KillWait=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurmctld.log
SlurmdLogFile=/var/log/slurmd.log
NodeName=$HOST CPUs=$cpus RealMemory=$mem Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    echo "NodeName=$HOST Name=gpu File=/run/scalecalc-fake-gpu/gpu[0-3]" > /etc/slurm/gres.conf
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    fi
}

start() {
    mkdir -p "$STATE" /run/munge /run/scalecalc-fake-gpu
    chown munge:munge /run/munge
    touch /run/scalecalc-fake-gpu/gpu{0,1,2,3}
    if ! pgrep -x munged >/dev/null; then
        runuser -u munge -- /usr/sbin/munged --force
        echo munged >> "$STATE/started"
    fi
    if ! pgrep -x slurmctld >/dev/null; then
        /usr/sbin/slurmctld -i
        echo slurmctld >> "$STATE/started"
    fi
    if ! pgrep -x slurmd >/dev/null; then
        /usr/sbin/slurmd
        echo slurmd >> "$STATE/started"
    fi
    for _ in $(seq 60); do
        if sinfo -h -N -o "%T" 2>/dev/null | grep -qE "^(idle|mixed|allocated)"; then
            scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
            echo "slurm: up ($(sinfo -h -o '%P %D %G %T' | tr '\n' ' '))"
            return 0
        fi
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "slurm: the node did not come up; see /var/log/slurmctld.log and /var/log/slurmd.log" >&2
    tail -5 /var/log/slurmctld.log /var/log/slurmd.log >&2 || true
    return 1
}

stop() {
    [ -f "$STATE/started" ] || return 0
    scancel --user=root >/dev/null 2>&1 || true
    for name in slurmd slurmctld; do
        if grep -qx "$name" "$STATE/started"; then
            pidfile=/run/$name.pid
            [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
    if grep -qx munged "$STATE/started"; then
        [ -f /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    fi
    rm -f "$STATE/started"
    echo "slurm: stopped"
}

"$@"
