#!/bin/bash
# bench-cri.sh up|down WORK [REG] — the two CRI servers of rkt-bench's group 10, side by side on
# scratch dirs under WORK: rkt-cri (RKT_BIN_DIR) and Debian's containerd 1.6 + runc configured as
# ../shared/cri-tools/containerd/README.md says. `up` fills the registry REG (host:port, plain
# http) with the conformance images (images.sh), starts both servers, pulls the busybox image on
# each and writes WORK/env (sockets, pids, crictl). `down` stops them and removes what they made.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${RKT_BIN_DIR:-$ROOT/target/release}
CRITEST_DIR=${CRITEST_DIR:-$ROOT/../shared/cri-tools}
[ -x "$CRITEST_DIR/bin/crictl" ] || CRITEST_DIR=/work/shared/cri-tools
cmd=$1 W=$2
CRICTL="$CRITEST_DIR/bin/crictl"

down() {
  set +e
  if [ -f "$W/env" ]; then
    # shellcheck disable=SC1091
    . "$W/env"
    for s in "$RKT_SOCK" "$CTD_SOCK"; do
      for p in $($CRICTL -r "unix://$s" pods -q 2>/dev/null); do
        $CRICTL -r "unix://$s" stopp "$p" >/dev/null 2>&1
        $CRICTL -r "unix://$s" rmp "$p" >/dev/null 2>&1
      done
    done
    kill "$RKT_PID" "$CTD_PID" 2>/dev/null
    sleep 1
    kill -9 "$RKT_PID" "$CTD_PID" 2>/dev/null
  fi
  ip link del cricni0 2>/dev/null
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$W"
  true
}

if [ "$cmd" = down ]; then down; exit 0; fi

REG=$3
[ -x "$CRICTL" ] || { echo "bench-cri.sh: no crictl in $CRITEST_DIR" >&2; exit 2; }
mkdir -p "$W"
bash "$CRITEST_DIR/images.sh" "$REG" >"$W/images.log" 2>&1
IMG=registry.k8s.io/e2e-test-images/busybox:1.29-2

# rkt-cri: mirrors for the upstream names, the policy of an internal mirror of unsigned images
R=$W/rkt
mkdir -p "$R/etc/registries.d" "$R/lib" "$R/data" "$R/logs"
scopes=
for r in registry.k8s.io k8s.gcr.io gcr.io; do
  printf '[[mirror]]\nregistry = "%s"\nendpoints = ["http://%s"]\n\n' "$r" "$REG" >>"$R/etc/registries.d/mirrors.toml"
  scopes="$scopes${scopes:+,}\"$r\":[{\"type\":\"insecureAcceptAnything\"}]"
done
printf '{"default":[{"type":"reject"}],"transports":{"docker":{%s}}}\n' "$scopes" >"$R/etc/policy.json"
setsid "$BIN/rkt-cri" --listen="$R/cri.sock" --dir="$R/data" --local-config="$R/etc" \
  --system-config="$R/lib" --insecure-options=http --cni-conf-dir="$R/cni" >"$R/cri.log" 2>&1 &
RKT_PID=$!

# containerd 1.6 + runc
C=$W/containerd
mkdir -p "$C/cni/net.d" "$C/run" "$C/logs"
sed "s|@DIR@|$C|g; s|@REG@|$REG|g" "$CRITEST_DIR/containerd/config.toml.in" >"$C/config.toml"
sed "s|@DIR@|$C|g; s|@REG@|$REG|g" "$CRITEST_DIR/containerd/10-cri.conflist.in" >"$C/cni/net.d/10-cri.conflist"
setsid containerd --config "$C/config.toml" >"$C/containerd.log" 2>&1 &
CTD_PID=$!

for _ in $(seq 200); do [ -S "$R/cri.sock" ] && [ -S "$C/run/containerd.sock" ] && break; sleep 0.05; done
cat >"$W/env" <<EOF
RKT_SOCK=$R/cri.sock
RKT_PID=$RKT_PID
RKT_DATA=$R/data
CTD_SOCK=$C/run/containerd.sock
CTD_PID=$CTD_PID
CRICTL=$CRICTL
EOF
for s in "$R/cri.sock" "$C/run/containerd.sock"; do
  "$CRICTL" -r "unix://$s" -i "unix://$s" pull "$IMG" >/dev/null 2>&1
done
# the pod and container every case runs: a busybox sleep, as the issue's yardstick says
for k in rkt containerd; do
  printf '{"metadata":{"name":"bench","namespace":"bench","uid":"bench-uid","attempt":1},"log_directory":"%s","linux":{}}\n' \
    "$W/$k/logs" >"$W/$k/pod.json"
  printf '{"metadata":{"name":"sleep"},"image":{"image":"%s"},"command":["sleep","3600"],"log_path":"sleep.log","linux":{}}\n' \
    "$IMG" >"$W/$k/ctr.json"
done
