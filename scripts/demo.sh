#!/bin/bash
# demo.sh — the main job, end to end on this machine, with nothing from the network:
# build a busybox OCI image locally, serve it from a local registry (TLS, per-run CA), sign
# it with a throwaway OpenPGP key, trust that key, fetch it with rkt (signature- and
# digest-verified, no --insecure-options) and run a two-app pod that prints from both apps.
# Everything lives in a temp dir that is cleaned up on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${RKT_BIN_DIR:-$ROOT/target/debug}
W=$(mktemp -d /tmp/rkt-demo.XXXXXX)
RKT=("$BIN/rkt" "--dir=$W/data" "--local-config=$W/etc" "--system-config=$W/lib")

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
  set +e
  exec 3>&- 2>/dev/null            # closing the fifo stops the registry
  GNUPGHOME="$W/gnupg" gpgconf --kill all 2>/dev/null
  if "${RKT[@]}" help gc >/dev/null 2>&1; then "${RKT[@]}" gc --grace-period=0s >/dev/null 2>&1; fi
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

say "rkt version"
"${RKT[@]}" version

say "build a busybox OCI image locally (Debian's busybox-static)"
"$BIN/rkt-devtool" image busybox "$W/oci"

say "start a local registry (docker-registry, http + TLS on 127.0.0.1)"
mkfifo "$W/fifo"
"$BIN/rkt-devtool" registry "$W/reg" <"$W/fifo" &
exec 3>"$W/fifo"
for _ in $(seq 100); do [ -s "$W/reg/env" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$W/reg/env"
mkdir -p "$W/etc/certs.d/$TLS_ADDR"
cp "$CA_FILE" "$W/etc/certs.d/$TLS_ADDR/ca.crt"

say "sign it while pushing: a throwaway OpenPGP key, skopeo's simple signing into a lookaside dir"
export GNUPGHOME="$W/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch -q --passphrase '' --quick-gen-key 'rkt demo signer <demo@rkt.invalid>' ed25519 sign never
FPR=$(gpg --batch -q --with-colons --list-keys 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }')
gpg --batch -q --armor --export "$FPR" >"$W/signer.asc"
mkdir -p "$W/skopeo.d" "$W/sigs"
# the signature names the reference it is pushed as: push to the name rkt will fetch
printf 'docker:\n  %s:\n    lookaside-staging: file://%s\n' "$TLS_ADDR" "$W/sigs" >"$W/skopeo.d/demo.yaml"
skopeo copy -q --dest-cert-dir "$W/etc/certs.d/$TLS_ADDR" --registries.d "$W/skopeo.d" --sign-by "$FPR" \
  "oci:$W/oci:busybox" "docker://$TLS_ADDR/demo/busybox:latest"
echo "pushed demo/busybox:latest (served on https://$TLS_ADDR, CA in certs.d), signed by $FPR"

say "tell rkt where the signatures are and trust the signer for the image's name"
mkdir -p "$W/etc/registries.d"
printf '[docker."%s"]\nlookaside = "file://%s"\n' "$TLS_ADDR" "$W/sigs" >"$W/etc/registries.d/sigs.toml"
if "${RKT[@]}" help trust >/dev/null 2>&1; then
  "${RKT[@]}" trust --prefix="$TLS_ADDR/demo/busybox" --skip-fingerprint-review "$W/signer.asc"
fi

IMG="docker://$TLS_ADDR/demo/busybox:latest"
if "${RKT[@]}" help fetch >/dev/null 2>&1; then
  say "rkt fetch $IMG"
  # no --insecure-options: the signature is checked against the trusted key, then the digests
  "${RKT[@]}" fetch "$IMG"
  "${RKT[@]}" image list
else
  say "rkt fetch is not built yet: skipping fetch"
fi

if "${RKT[@]}" help run >/dev/null 2>&1; then
  say "rkt run: a two-app pod; the rkt process is the pod"
  "${RKT[@]}" run --net=host \
    "$IMG" --name=hello --exec=/bin/sh -- -c 'echo "hello from app $AC_APP_NAME in pod $(hostname)"' --- \
    "$IMG" --name=world --exec=/bin/sh -- -c 'sleep 0.2; echo "hello from app $AC_APP_NAME, same pod"' ---
  echo "pod exited with $?"
  if "${RKT[@]}" help list >/dev/null 2>&1; then "${RKT[@]}" list; fi
else
  say "rkt run is not built yet: skipping the pod"
fi

CRICTL=${CRITEST_DIR:-$ROOT/../shared/cri-tools}/bin/crictl
[ -x "$CRICTL" ] || CRICTL=/work/shared/cri-tools/bin/crictl
if [ -x "$BIN/rkt-cri" ] && [ -x "$CRICTL" ]; then
  say "rkt-cri: the same image and trust through the CRI, driven by crictl as a kubelet would"
  "$BIN/rkt-cri" --listen="$W/cri.sock" --dir="$W/data" --local-config="$W/etc" \
    --system-config="$W/lib" --net=host >"$W/cri.log" 2>&1 &
  CRI_PID=$!
  for _ in $(seq 100); do [ -S "$W/cri.sock" ] && break; sleep 0.05; done
  C=("$CRICTL" --config=/dev/null -r "unix://$W/cri.sock" -i "unix://$W/cri.sock")
  printf '{"metadata":{"name":"demo","namespace":"default","uid":"demo-1","attempt":1},"log_directory":"%s","linux":{}}\n' \
    "$W/logs" >"$W/pod.json"
  printf '{"metadata":{"name":"hello"},"image":{"image":"%s"},"command":["/bin/sh","-c","echo hello from a CRI container in $(hostname); sleep 30"],"log_path":"hello.log","linux":{}}\n' \
    "${IMG#docker://}" >"$W/ctr.json"
  "${C[@]}" pull "${IMG#docker://}"
  POD=$("${C[@]}" runp "$W/pod.json")
  CTR=$("${C[@]}" create "$POD" "$W/ctr.json" "$W/pod.json")
  "${C[@]}" start "$CTR"
  sleep 0.3
  "${C[@]}" pods
  "${C[@]}" ps
  "${C[@]}" logs "$CTR"
  "${C[@]}" exec -s "$CTR" /bin/sh -c 'echo "exec in the container: $(id -un)"'
  "${C[@]}" stopp "$POD" >/dev/null
  "${C[@]}" rmp "$POD"
  kill "$CRI_PID"; wait "$CRI_PID" 2>/dev/null || true
else
  say "rkt-cri or crictl (../shared/cri-tools) missing: skipping the CRI step"
fi
say "demo done"
