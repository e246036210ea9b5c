#!/bin/bash
# booted-systemd.sh - boot a real systemd (Debian bookworm) in systemd-nspawn on a host whose
# PID 1 is not systemd, to test a container runtime under systemd.
#   booted-systemd.sh build          debootstrap the root (cached) into ${BOOT_DIR:-/var/tmp/rkt-booted-systemd}/root
#   booted-systemd.sh start          boot it in the background, wait for running/degraded (90 s)
#   booted-systemd.sh exec CMD...    run CMD inside (nsenter into PID 1's namespaces), exit code kept;
#                          CMD runs outside the container's cgroup and seccomp filter: for a real
#                          container process use  exec systemd-run --wait --pipe -q CMD...
#   booted-systemd.sh stop           poweroff, reap nspawn, check nothing stays mounted
#   booted-systemd.sh status         built? running? system state
# Env: BINDS="SRC:DST SRC2:DST2" read-only binds for start (space or comma separated);
#      BINDS_RW likewise, read-write; BOOT_CGMODE=1|hybrid|0 container cgroup layout:
#      1 (default) pure cgroup2, writable, but no controllers (this host binds them to v1);
#      hybrid/0 mount the v1 controllers read-only, so nested runtimes cannot make cgroups.
#      BOOT_NSPAWN_EXTRA="..." more nspawn flags (word-split).
set -u
D=${BOOT_DIR:-/var/tmp/rkt-booted-systemd}; ROOT=$D/root; LOG=$D/boot.log
# the host cgroup is named after the dir, so two BOOT_DIRs can run side by side
NPID=$D/nspawn.pid; LPID=$D/leader.pid; CG=$(basename "$D")
# Syscalls nspawn's default filter denies (EPERM) that runtimes use: keyctl (runc/youki join a
# session keyring), bpf (cgroup2 device filter), pidfd_getfd/perf (@debug), landlock.
SCF='@keyring @debug bpf landlock_create_ruleset landlock_add_rule landlock_restrict_self'
PKGS=systemd,systemd-sysv,systemd-container,dbus,iproute2,iptables,procps,ca-certificates
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "booted-systemd.sh: $*" >&2; exit 1; }
up() { local s; s=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)
  [ -n "$s" ] && [ "$s" != Z ]; }   # exists and is no zombie
alive() { [ -s "$NPID" ] && up "$(cat "$NPID")"; }

# The host's Debian mirror: first "deb" source with suite bookworm (deb822, then one-line).
mirror() {
  { for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] || continue
      awk 'BEGIN{RS="";FS="\n"} { u=s=t=""; off=0
        for(i=1;i<=NF;i++){ l=$i; if(l~/^#/) continue
          if(l~/^URIs:/){sub(/^URIs:[ \t]*/,"",l);split(l,a,/[ \t]+/);u=a[1]}
          if(l~/^Suites:/) s=l" "; if(l~/^Types:/) t=l" "; if(l~/^Enabled:[ \t]*no/) off=1 }
        if(!off && t~/[ \t]deb[ \t]/ && s~/[ \t]bookworm[ \t]/) print u }' "$f"; done
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1=="deb"{i=2; if($2~/^\[/){while($i!~/\]$/)i++; i++} if($(i+1)=="bookworm") print $i}'
  } | head -n1
}

# Unmount anything left under ROOT (e.g. from an interrupted debootstrap), deepest first.
umount_all() {
  awk -v r="$ROOT" '$2==r || index($2, r"/")==1 {print $2}' /proc/self/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  ! grep -q " $ROOT[ /]" /proc/self/mounts
}

build() {
  [ -f "$ROOT/.build-complete" ] && { echo "cached: $ROOT"; return 0; }
  alive && die "container is running; stop it first"
  command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; } ||
    die "cannot install debootstrap"
  local m; m=$(mirror); [ -n "$m" ] || die "no bookworm mirror found in apt sources"
  mkdir -p "$D"; umount_all || die "mounts remain under $ROOT"; rm -rf "$ROOT"
  echo "debootstrap from $m"; local t0=$SECONDS
  debootstrap --variant=minbase --include="$PKGS" bookworm "$ROOT" "$m" || die "debootstrap failed"
  echo booted >"$ROOT/etc/hostname"
  # Units that fail, hang or reach for the network in a container: mask them.
  for u in systemd-networkd-wait-online.service getty.target console-getty.service \
      getty@.service serial-getty@.service container-getty@.service apt-daily.timer \
      apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
      systemd-timesyncd.service; do ln -sf /dev/null "$ROOT/etc/systemd/system/$u"; done
  rm -f "$ROOT"/var/cache/apt/archives/*.deb
  touch "$ROOT/.build-complete"; echo "built $ROOT in $((SECONDS - t0)) s"
}

# Container init: the process whose PID in its own namespace is 1 and whose parent is nspawn.
find_leader() {
  local p
  for p in /proc/[0-9]*; do
    grep -qE "^PPid:[[:space:]]+$1\$" "$p/status" 2>/dev/null &&
      grep -qE "^NSpid:[[:space:]]+[0-9]+[[:space:]]+1\$" "$p/status" && { echo "${p#/proc/}"; return 0; }
  done; return 1
}

# Leader pid file, re-derived if missing (e.g. start was interrupted after nspawn began).
leader_ok() { alive || return 1; local l np; np=$(cat "$NPID")
  [ -s "$LPID" ] && grep -qE "^PPid:[[:space:]]+$np\$" "/proc/$(cat "$LPID")/status" 2>/dev/null &&
    return 0
  l=$(find_leader "$np") && echo "$l" >"$LPID"; }

in_ct() {  # run a command inside, in all of PID 1's namespaces, with a clean env
  nsenter -t "$(cat "$LPID")" -a -r -w env -i PATH="$PATH" HOME=/root LANG=C.UTF-8 \
    TERM="${TERM:-dumb}" SYSTEMD_PAGER=cat "$@"
}

start() {
  [ -f "$ROOT/.build-complete" ] || die "not built; run: $0 build"
  alive && die "already running (nspawn pid $(cat "$NPID"))"
  umount_all || die "mounts remain under $ROOT"
  local a=() b
  local ro=${BINDS:-} rw=${BINDS_RW:-}
  for b in ${ro//,/ }; do a+=("--bind-ro=$b"); done
  for b in ${rw//,/ }; do a+=("--bind=$b"); done
  local cgm=${BOOT_CGMODE:-1}
  case $cgm in 0|1) export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=$cgm;;
    *) unset SYSTEMD_NSPAWN_UNIFIED_HIERARCHY;; esac
  rm -f "$NPID" "$LPID"; local t0=$SECONDS ms0; ms0=$(date +%s%3N)
  # Own host cgroup (name=systemd + cgroup2), so nspawn's payload/supervisor land under it;
  # own session (setsid: no fork, the subshell is no group leader) so ^C/timeout spare it.
  ( for h in systemd unified; do [ -f "/sys/fs/cgroup/$h/cgroup.procs" ] || continue
      mkdir -p "/sys/fs/cgroup/$h/$CG" &&
      echo "$BASHPID" >"/sys/fs/cgroup/$h/$CG/cgroup.procs" || exit 1; done
    exec setsid systemd-nspawn -b -D "$ROOT" -M booted --register=no --keep-unit \
      --private-network --capability=all --link-journal=no --console=read-only \
      --system-call-filter="$SCF" ${BOOT_NSPAWN_EXTRA:-} "${a[@]}"
  ) </dev/null >"$LOG" 2>&1 &
  local np=$!; echo "$np" >"$NPID"
  local st=""
  while [ $((SECONDS - t0)) -lt 90 ]; do
    alive || { tail -n 30 "$LOG" >&2; rm -f "$NPID"; die "nspawn exited during boot (log: $LOG)"; }
    leader_ok && st=$(in_ct systemctl is-system-running 2>/dev/null)
    case $st in running|degraded) break;; esac; sleep 0.5
  done
  echo "nspawn pid $np, leader pid $(cat "$LPID" 2>/dev/null), state '$st' after $(( $(date +%s%3N) - ms0 )) ms"
  case $st in running|degraded) return 0;; *) die "boot did not finish in 90 s (log: $LOG)";; esac
}

stop() {
  if alive; then local np l i; np=$(cat "$NPID"); local t0=$SECONDS
    [ "$(cat "/proc/$np/comm")" = systemd-nspawn ] || die "pid $np is not systemd-nspawn"
    leader_ok && timeout 10 nsenter -t "$(cat "$LPID")" -a -r -w systemctl poweroff --no-block \
      >/dev/null 2>&1
    for i in $(seq 30); do up "$np" || break; sleep 1; done
    # nspawn turns SIGTERM into a halt request to the container; then force (leader first,
    # re-checked to be nspawn's namespaced PID 1 so a reused PID is never hit).
    up "$np" && { echo "poweroff timed out; SIGTERM to nspawn $np"
      kill -TERM "$np"; for i in $(seq 10); do up "$np" || break; sleep 1; done; }
    up "$np" && { echo "SIGKILL to nspawn $np and its PID 1"
      l=$(find_leader "$np") && kill -KILL "$l"; kill -KILL "$np"; sleep 1; }
    echo "stopped in $((SECONDS - t0)) s"
  else echo "not running"; fi
  rm -f "$NPID" "$LPID"
  for h in systemd unified; do [ -d "/sys/fs/cgroup/$h/$CG" ] &&
    find "/sys/fs/cgroup/$h/$CG" -depth -type d -exec rmdir {} + 2>/dev/null; done
  umount_all && echo "no mounts under $ROOT" || die "mounts remain under $ROOT"
}

status() {
  [ -f "$ROOT/.build-complete" ] && echo "built: $ROOT" || echo "not built"
  if alive; then leader_ok
    echo "running: nspawn pid $(cat "$NPID"), leader pid $(cat "$LPID" 2>/dev/null)"
    leader_ok && echo "state: $(in_ct systemctl is-system-running 2>&1)," \
      "/sys/fs/cgroup: $(in_ct stat -fc %T /sys/fs/cgroup)"
  else echo "not running"; fi
}

cmd=${1:-}; shift || true
case $cmd in
  build) build;; start) start;; stop) stop;; status) status;;
  exec) leader_ok || die "not running"; [ $# -gt 0 ] || die "exec needs a command"
    in_ct "$@"; exit $?;;
  *) awk 'NR>1 && !/^#/ {exit} NR>1 {sub(/^# ?/, ""); print}' "$0"; exit 2;;
esac
