#!/bin/bash
# critest.sh — Kubernetes' CRI conformance suite (critest, cri-tools v1.36.0) against rkt-cri on
# a scratch data dir: a local registry filled with the conformance images (images.sh), rkt's
# mirrors for their upstream registries, and the signature policy an operator writes for an
# internal mirror of unsigned images. Prints critest's summary; exits with critest's status.
# CRITEST_DIR (default ../shared/cri-tools) holds bin/critest and images.sh;
# CRITEST_FOCUS / CRITEST_SKIP are ginkgo regexes (docs/cri.md says which specs can run today).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${RKT_BIN_DIR:-$ROOT/target/debug}
CRITEST_DIR=${CRITEST_DIR:-$ROOT/../shared/cri-tools}
[ -x "$CRITEST_DIR/bin/critest" ] || [ ! -x /work/shared/cri-tools/bin/critest ] || CRITEST_DIR=/work/shared/cri-tools
SKIP=${CRITEST_SKIP:-public image with digest}
if [ ! -x "$CRITEST_DIR/bin/critest" ]; then
  # cri-tools is not a Debian package and cannot be built offline: a machine without the
  # prebuilt binaries cannot run the suite (make test says so and goes on; make critest fails)
  echo "critest.sh: no $CRITEST_DIR/bin/critest (set CRITEST_DIR): CRI conformance not run" >&2
  [ -n "${CRITEST_MIN_PASSED:-}" ] && exit 0
  exit 2
fi
W=$(mktemp -d /tmp/rkt-critest.XXXXXX)
# as a data dir's parents are: a pod with private users (the user-namespace specs) must be able
# to search its way to its pod dir (docs/security.md, "User namespaces")
chmod 755 "$W"
SRV=
cleanup() {
  set +e
  [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
  exec 3>&- 2>/dev/null            # closing the fifo stops the registry
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

mkfifo "$W/fifo"
"$BIN/rkt-devtool" registry "$W/reg" <"$W/fifo" &
exec 3>"$W/fifo"
for _ in $(seq 100); do [ -s "$W/reg/env" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$W/reg/env"
echo "registry on $HTTP_ADDR: pushing the conformance images"
bash "$CRITEST_DIR/images.sh" "$HTTP_ADDR" >"$W/images.log" 2>&1 || { tail "$W/images.log"; exit 1; }

mkdir -p "$W/etc/registries.d" "$W/lib" "$W/data"
scopes=
for r in registry.k8s.io k8s.gcr.io gcr.io docker.io; do
  printf '[[mirror]]\nregistry = "%s"\nendpoints = ["http://%s"]\n\n' "$r" "$HTTP_ADDR" >>"$W/etc/registries.d/mirrors.toml"
  scopes="$scopes${scopes:+,}\"$r\":[{\"type\":\"insecureAcceptAnything\"}]"
done
# the conformance images are unsigned: accept their registries, refuse everything else
printf '{"default":[{"type":"reject"}],"transports":{"docker":{%s}}}\n' "$scopes" >"$W/etc/policy.json"

"$BIN/rkt-cri" --listen="$W/cri.sock" --dir="$W/data" --local-config="$W/etc" \
  --system-config="$W/lib" --insecure-options=http --cni-conf-dir="$W/cni" >"$W/cri.log" 2>&1 &
SRV=$!
for _ in $(seq 100); do [ -S "$W/cri.sock" ] && break; sleep 0.1; done
[ -S "$W/cri.sock" ] || { cat "$W/cri.log"; exit 1; }

args=(--runtime-endpoint "unix://$W/cri.sock" --image-endpoint "unix://$W/cri.sock"
      --config /dev/null --ginkgo.no-color --ginkgo.skip="$SKIP")
[ -n "${CRITEST_FOCUS:-}" ] && args+=(--ginkgo.focus="$CRITEST_FOCUS")
set +e
"$CRITEST_DIR/bin/critest" "${args[@]}" >"$W/critest.log" 2>&1
rc=$?
if [ -n "${CRITEST_MIN_PASSED:-}" ] && [ $rc -eq 0 ]; then
  # the streaming specs again over WebSocket (kubectl's newer transport) instead of SPDY
  "$CRITEST_DIR/bin/critest" --runtime-endpoint "unix://$W/cri.sock" --image-endpoint "unix://$W/cri.sock" \
    --config /dev/null --ginkgo.no-color --ginkgo.focus=Streaming \
    --websocket-exec --websocket-attach --websocket-portforward >"$W/critest-ws.log" 2>&1
  rc=$?
  echo "over WebSocket: $(grep -E '^(SUCCESS|FAIL)' "$W/critest-ws.log" || tail -3 "$W/critest-ws.log")"
  [ $rc -eq 0 ] || grep -E "^\s*\[FAIL\]" "$W/critest-ws.log" | sort -u
fi
set -e
grep -E "^(Ran |SUCCESS|FAIL|\[FAIL\])" "$W/critest.log" || tail -20 "$W/critest.log"
grep -E "^\s*\[FAIL\]" "$W/critest.log" | sort -u || true
# why, for a log that is all there is (CI): each failure's message
[ $rc -eq 0 ] || grep -E -A12 "^\s*\[FAILED\] (Timed out|Unexpected|Expected|.*error)" "$W/critest.log" | head -120
# make test: every spec that can run here must pass (docs/cri.md says which cannot)
if [ -n "${CRITEST_MIN_PASSED:-}" ] && [ $rc -eq 0 ]; then
  passed=$(grep -oE '[0-9]+ Passed' "$W/critest.log" | tail -1 | cut -d' ' -f1)
  if [ "${passed:-0}" -lt "$CRITEST_MIN_PASSED" ]; then
    echo "critest.sh: $passed passed, fewer than $CRITEST_MIN_PASSED" >&2
    exit 1
  fi
fi
exit $rc
