#!/usr/bin/env bash
# Single-node Slurm test cluster without systemd.
#
#   tests/slurm/cluster.sh start    # install (if needed), start munged + slurmctld + slurmd, wait for node idle
#   tests/slurm/cluster.sh status   # exit 0 if both daemons run and the node answers
#   tests/slurm/cluster.sh stop     # cancel jobs, stop slurmd + slurmctld (munged is left running;
#                                   #   SLURM_TEST_STOP_MUNGE=1 also stops it if this script started it)
#   tests/slurm/cluster.sh env      # print `export SLURM_CONF=...` (for eval)
#
# Environment:
#   SLURM_TEST_DIR          state folder (default /tmp/repronets-slurm): slurm.conf, state, spool, logs, pids
#   SLURM_TEST_WAIT         seconds to wait for the node to become idle / daemons to stop (default 30)
#   SLURM_TEST_CRED_EXPIRE  AuthInfo=cred_expire (default 5 = the minimum Slurm accepts; also the
#                           delay before a requeued job may start again)
#   SLURM_TEST_CTLD_PORT / SLURM_TEST_SLURMD_PORT   (default 6817 / 6818)
#   SLURM_TEST_DEF_MEM      DefMemPerCPU in MB (default 1024; without it a job with no --mem gets
#                           the whole node's memory under CR_Core_Memory and nothing runs beside it)
#   SLURM_TEST_KEEP_STATE=1 keep jobs from a previous run (default: slurmctld -c, clean slate)
#   SLURM_TEST_STOP_MUNGE=1 `stop` also stops munged when this script started it
# Clients (sbatch, squeue, scontrol, submitit) need SLURM_CONF=$SLURM_TEST_DIR/slurm.conf in their env.
#
# Measured on Debian 12 (gVisor VM, 2 cores), Slurm 22.05.8, munge 0.5.15:
#   - apt-get install slurmctld slurmd slurm-client munge: ~6 s here (skipped when binaries exist)
#   - `start` (daemons -> node idle): < 1 s; `stop` (cancel jobs, TERM daemons): ~1-4 s
#   - cred expire in 22.05 is `AuthInfo=cred_expire=N` (N >= 5, else ignored with an error -> 120)
#   - requeued job (scontrol requeue, or from inside the job) runs again after cred_expire+1 = ~6 s,
#     but only because SchedulerParameters=sched_interval=1: with the default (60) it took 24-40 s
#   - slurmctld checks time limits (and --signal=SIG@N) only every 30 s (hard-coded): a
#     --time=1 --signal=B:USR2@50 job got USR2 ~20 s after start, a --time=1 job was killed at 78 s
#   - see tests/slurm/NOTES.md for details and submitit facts
set -Eeuo pipefail

PATH="$PATH:/usr/sbin:/sbin"
DIR="${SLURM_TEST_DIR:-/tmp/repronets-slurm}"
CONF="$DIR/slurm.conf"
WAIT="${SLURM_TEST_WAIT:-30}"
CRED_EXPIRE="${SLURM_TEST_CRED_EXPIRE:-5}"
CTLD_PORT="${SLURM_TEST_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_TEST_SLURMD_PORT:-6818}"
DEF_MEM="${SLURM_TEST_DEF_MEM:-1024}"
export SLURM_CONF="$CONF"

die() { echo "cluster.sh: ERROR: $*" >&2; exit 1; }
trap 'rc=$?; echo "cluster.sh: ERROR: command failed (rc=$rc, line $LINENO): $BASH_COMMAND" >&2; exit $rc' ERR
log() { echo "cluster.sh: $*" >&2; }

# run CMD...: run with its output captured; on failure print the command and its output, exit.
run() {
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "cluster.sh: ERROR: '$*' failed (rc=$rc):" >&2
    [ -n "$out" ] && printf '%s\n' "$out" | tail -n 30 >&2
    exit "$rc"
  fi
  [ -z "$out" ] || printf '%s\n' "$out"
}

have() { command -v "$1" >/dev/null 2>&1; }

# pid from a pid file if that process is alive and is the named program
alive_pid() { # pidfile name
  local f=$1 name=$2 pid
  [ -s "$f" ] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q "$name" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

ensure_packages() {
  if have slurmctld && have slurmd && have sbatch && have munged; then return 0; fi
  [ "$(id -u)" = 0 ] || die "slurm/munge not installed and not root: apt-get install slurmctld slurmd slurm-client munge"
  log "installing slurmctld slurmd slurm-client munge (apt)"
  export DEBIAN_FRONTEND=noninteractive
  run timeout 300 apt-get update -q >/dev/null
  run timeout 600 apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  for b in slurmctld slurmd sbatch munged munge unmunge; do have "$b" || die "$b still missing after apt-get install"; done
}

munge_ok() { timeout 10 bash -c 'munge -n | unmunge' >/dev/null 2>&1; }

ensure_munge() {
  local key=/etc/munge/munge.key
  if munge_ok; then return 0; fi
  [ "$(id -u)" = 0 ] || die "munged not running and not root"
  if [ ! -s "$key" ]; then
    log "creating $key"
    mkdir -p /etc/munge
    if have mungekey; then run timeout 30 mungekey --create --keyfile="$key"
    else run timeout 30 dd if=/dev/urandom of="$key" bs=1024 count=1 status=none; fi
  fi
  chown munge:munge "$key" && chmod 400 "$key"
  chown munge:munge /etc/munge && chmod 700 /etc/munge
  install -d -o munge -g munge -m 755 /run/munge
  install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
  log "starting munged"
  if have runuser; then run timeout 30 runuser -u munge -- munged
  else run timeout 30 munged --force; fi
  mkdir -p "$DIR/run" && touch "$DIR/run/munged.started-by-cluster.sh"
  local t=0
  until munge_ok; do
    t=$((t + 1)); [ "$t" -le 10 ] || die "'munge -n | unmunge' still fails 10 s after starting munged: $(munge -n 2>&1 | unmunge 2>&1 | tail -2)"
    sleep 1
  done
}

write_conf() {
  local nodeline node host
  nodeline=$(timeout 30 slurmd -C | head -n 1) || die "'slurmd -C' failed"
  [[ "$nodeline" == NodeName=* ]] || die "'slurmd -C' printed no NodeName line: $nodeline"
  node=${nodeline#NodeName=}; node=${node%% *}
  host=$(hostname -s)
  mkdir -p "$DIR"/{state,spool,log,run}
  cat >"$CONF.tmp" <<EOF
# Generated by tests/slurm/cluster.sh -- single-node test cluster, not for production.
ClusterName=repronets
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# Slurm <= 23.x: credential lifetime; also the minimum delay before a requeued job starts again.
AuthInfo=cred_expire=$CRED_EXPIRE
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM
SchedulerType=sched/backfill
# sched_interval=1: a requeued job's BeginTime passing triggers no scheduling event, the main
# loop must poll (default every 60 s); bf_interval=1 likewise for the backfill loop.
SchedulerParameters=bf_interval=1,sched_interval=1
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=60
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout=10
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$nodeline NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
  echo "$node" >"$DIR/run/nodename"
}

node_state() { timeout 10 sinfo -h -N -n "$(cat "$DIR/run/nodename")" -o %T 2>/dev/null | head -n 1; }

ctld_pid() { alive_pid "$DIR/run/slurmctld.pid" slurmctld; }
slurmd_pid() { alive_pid "$DIR/run/slurmd.pid" slurmd; }

start() {
  [ "$(id -u)" = 0 ] || die "must run as root (SlurmUser=root, slurmd must switch users)"
  ensure_packages
  ensure_munge
  local t0=$SECONDS
  if ctld_pid >/dev/null && slurmd_pid >/dev/null; then
    log "already running (conf $CONF)"
  else
    [ -f "$CONF" ] && ! ctld_pid >/dev/null && ! slurmd_pid >/dev/null && rm -f "$CONF"
    [ -f "$CONF" ] || write_conf
    if ! ctld_pid >/dev/null; then
      local clean=-c; [ "${SLURM_TEST_KEEP_STATE:-0}" = 1 ] && clean=
      : >"$DIR/log/slurmctld.log"
      timeout 30 slurmctld -f "$CONF" $clean || die "'slurmctld -f $CONF $clean' failed; log:
$(tail -n 20 "$DIR/log/slurmctld.log")"
    fi
    if ! slurmd_pid >/dev/null; then
      : >"$DIR/log/slurmd.log"
      timeout 30 slurmd -f "$CONF" || die "'slurmd -f $CONF' failed; log:
$(tail -n 20 "$DIR/log/slurmd.log")"
    fi
  fi
  local st="" resumed=0
  while :; do
    st=$(node_state || true)
    case "$st" in
      idle|mixed|allocated|completing) break ;;
      down*|drain*|fail*|inval*)
        if [ "$resumed" = 0 ] && [ $((SECONDS - t0)) -ge 3 ]; then
          log "node is '$st', resuming"
          timeout 10 scontrol update nodename="$(cat "$DIR/run/nodename")" state=resume || true
          resumed=1
        fi ;;
    esac
    if [ $((SECONDS - t0)) -ge "$WAIT" ]; then
      echo "cluster.sh: ERROR: node not idle after ${WAIT}s (state '${st:-no answer}')" >&2
      echo "--- slurmctld.log" >&2; tail -n 15 "$DIR/log/slurmctld.log" >&2 || true
      echo "--- slurmd.log" >&2; tail -n 15 "$DIR/log/slurmd.log" >&2 || true
      exit 1
    fi
    ctld_pid >/dev/null || die "slurmctld died; log:
$(tail -n 20 "$DIR/log/slurmctld.log")"
    slurmd_pid >/dev/null || die "slurmd died; log:
$(tail -n 20 "$DIR/log/slurmd.log")"
    sleep 0.5
  done
  log "up in $((SECONDS - t0)) s: node $(cat "$DIR/run/nodename") $st"
  echo "export SLURM_CONF=$CONF"
}

stop() {
  local pid t
  if ctld_pid >/dev/null && [ -f "$DIR/run/nodename" ]; then
    # cancel every job of this cluster so no slurmstepd/job processes outlive the daemons
    timeout 10 scancel --partition=debug >/dev/null 2>&1 || true
    t=$SECONDS
    while [ -n "$(timeout 10 squeue -h -t R,CG,S -o %i 2>/dev/null)" ] && [ $((SECONDS - t)) -lt "$WAIT" ]; do sleep 0.5; done
  fi
  for d in slurmd slurmctld; do
    pid=$(alive_pid "$DIR/run/$d.pid" "$d") || continue
    kill -TERM "$pid" 2>/dev/null || true
    t=$SECONDS
    while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - t)) -lt "$WAIT" ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then log "$d ($pid) ignored SIGTERM for ${WAIT}s, SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$DIR/run/$d.pid"
    log "stopped $d ($pid)"
  done
  if [ "${SLURM_TEST_STOP_MUNGE:-0}" = 1 ] && [ -f "$DIR/run/munged.started-by-cluster.sh" ]; then
    pid=$(alive_pid /run/munge/munged.pid munged) && { kill -TERM "$pid"; log "stopped munged ($pid)"; }
    rm -f "$DIR/run/munged.started-by-cluster.sh"
  fi
  return 0
}

status() {
  local c s
  c=$(ctld_pid || echo none); s=$(slurmd_pid || echo none)
  echo "SLURM_CONF=$CONF slurmctld=$c slurmd=$s munge=$(munge_ok && echo ok || echo down)"
  [ "$c" != none ] && [ "$s" != none ] || return 1
  timeout 10 sinfo -N -l || return 1
  timeout 10 squeue || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status || exit 1 ;;
  restart) stop; start ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|restart|env" >&2; exit 2 ;;
esac
