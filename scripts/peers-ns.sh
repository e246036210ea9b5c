#!/bin/bash
# peers-ns.sh — run a peer (crun) in a persistent private mount namespace without the cgroup2
# mount at /sys/fs/cgroup/unified. crun 1.8 refuses this hybrid host ("cgroups in hybrid mode
# not supported") because that mount holds the hugetlb controller; without it crun sees plain
# cgroup v1. The host's own mounts are not touched.
#   peers-ns.sh setup | exec CMD... | teardown
set -eu
D=/run/rkt-bench-ns
NS=$D/mnt
setup() {
  [ -e "$NS" ] && nsenter --mount="$NS" true 2>/dev/null && return 0
  mkdir -p "$D"
  mountpoint -q "$D" || { mount --bind "$D" "$D"; mount --make-private "$D"; }
  : >"$NS"
  unshare --mount="$NS" --propagation private sh -c \
    'umount /sys/fs/cgroup/unified 2>/dev/null || umount -l /sys/fs/cgroup/unified 2>/dev/null || true'
}
case "${1:-}" in
  setup) setup ;;
  exec) shift; setup; exec nsenter --mount="$NS" -- "$@" ;;
  teardown) umount "$NS" 2>/dev/null || true; rm -f "$NS" ;;
  *) echo "usage: $0 setup|exec CMD...|teardown" >&2; exit 2 ;;
esac
