#!/bin/bash
# bench-peers-setup.sh — configure podman for this kind of host (idempotent):
# - no systemd as PID 1: cgroupfs manager and file events;
# - root lacks CAP_SYS_RESOURCE: default ulimits no higher than the current hard limits
#   (podman's defaults make the OCI runtime fail with EPERM on setrlimit), nproc ≤ pid_max;
# - crun refuses the hybrid cgroup layout: podman uses runc; crun is benchmarked through
#   scripts/peers-ns.sh.
set -euo pipefail
CONF=/etc/containers
mkdir -p "$CONF"
NOFILE=$(ulimit -Hn); NPROC=$(ulimit -Hu); PIDMAX=$(cat /proc/sys/kernel/pid_max)
[ "$NPROC" = unlimited ] && NPROC=$PIDMAX
[ "$NPROC" -gt "$PIDMAX" ] && NPROC=$PIDMAX
MARK="# rkt bench-peers-setup nofile=$NOFILE nproc=$NPROC"
if ! grep -qF "$MARK" "$CONF/containers.conf" 2>/dev/null; then
  [ -f "$CONF/containers.conf" ] && cp -n "$CONF/containers.conf" "$CONF/containers.conf.orig-rkt" || true
  cat >"$CONF/containers.conf" <<EOC
$MARK
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOC
fi
if ! grep -q '^# rkt bench-peers-setup' "$CONF/storage.conf" 2>/dev/null; then
  [ -f "$CONF/storage.conf" ] && cp -n "$CONF/storage.conf" "$CONF/storage.conf.orig-rkt" || true
  cat >"$CONF/storage.conf" <<'EOC'
# rkt bench-peers-setup
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
[storage.options.overlay]
mountopt = "nodev"
EOC
fi
"$(dirname "$0")/peers-ns.sh" setup
for c in podman crun runc skopeo hyperfine systemd-nspawn; do
  printf '  %-16s %s\n' "$c" "$($c --version 2>&1 | head -1)"
done
