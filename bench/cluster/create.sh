#!/bin/bash
# bench/cluster/create.sh [TOPOLOGY...]: `kina create cluster` time for each
# topology (1 = one control plane, 1+1 = and a worker, 3+1 = three control
# planes and a worker), with each step's share (create-steps.tsv), the QEMU
# RSS per node once Ready, and kina's own overhead: the ratio of create's
# time to the same steps run by hand (the tools piped directly, as
# docs/cluster.md "By hand") in the same run. Target: ratio <= 1.1.
# Needs root, a built tree (scripts/bootstrap) and the node image (built on
# first use). Under TCG every number here is slow and noisy; compare ratios.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
b=$src/build/tools
export PATH=$b/kina-node:$b/kina-vm:$b/kina-kube:$b/kina-image:$b/kina-audit:$src/tools/kina:$PATH
work=$(mktemp -d /var/tmp/kina-bench-cluster.XXXXXX)
export KINA_HOME=$work/home KUBECONFIG=$work/kubeconfig
export KINA_KERNEL_CACHE=${KINA_KERNEL_CACHE:-/tmp/kina-kernel-cache}
trap 'for c in b1 b2; do kina delete cluster --name $c >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT
[ $# -gt 0 ] || set -- 1 1+1

config() {  # config CPS WORKERS
  echo "kind: Cluster"; echo "apiVersion: kind.x-k8s.io/v1alpha4"; echo "nodes:"
  for _ in $(seq "$1"); do echo "- role: control-plane"; done
  for _ in $(seq "$2"); do echo "- role: worker"; done
}
ms() { date +%s%3N; }

# The same steps by hand (no front end): plan, disk, PKI, network, boots in
# parallel, init, addons, joins, wait.
by_hand() {
  local c=$1 cfg=$2
  kina-node plan --config "$cfg" --name "$c" > "$work/$c.plan"
  kina-image unpack kina.local/node:v1.37.2 --disk "$work/$c.ext4" --disk-size 8Gi > /dev/null
  kina-kube pki init --cluster "$c" > /dev/null
  kina-vm network create net --cluster "$c" > /dev/null
  local port=$((40000 + RANDOM % 20000))
  for n in $(jq -r 'select(.kind=="NodePlan") | .name' "$work/$c.plan"); do
    local pub=()
    [ "$(jq -r --arg n "$n" 'select(.kind=="NodePlan" and .name==$n) | .bootstrap' "$work/$c.plan")" = true ] && pub=(--publish "127.0.0.1:$port:6443")
    kina-vm boot --name "$n" --cluster "$c" --network net --disk "$work/$c.ext4" --cpus 2 --memory 2048Mi \
      "${pub[@]}" --ready systemd --timeout 900s > "$work/$c.$n.machine" &
  done
  wait
  cat "$work/$c".*.machine > "$work/$c.machines"
  cat "$work/$c.plan" "$work/$c.machines" | kina-node init | kina-node addons > "$work/$c.after"
  for n in $(jq -r 'select(.kind=="NodePlan" and (.bootstrap|not)) | .name' "$work/$c.plan"); do
    cat "$work/$c.plan" "$work/$c.machines" | kina-node join --node "$n" > /dev/null
  done
  cat "$work/$c.plan" "$work/$c.machines" | kina-node wait --timeout 30m > /dev/null
}

kina-vm kernel > /dev/null 2>&1 || kina-vm kernel --fetch > /dev/null
kina build node-image > /dev/null 2>&1
for topo in "$@"; do
  cps=${topo%%+*}; workers=0; [ "$topo" = "$cps" ] || workers=${topo#*+}
  config "$cps" "$workers" > "$work/$topo.yaml"
  t0=$(ms); by_hand b1 "$work/$topo.yaml"; t1=$(ms)
  rss=$(for p in $(pgrep -f "kina:b1/"); do ps -o rss= -p "$p"; done | awk '{s+=$1; n++} END {if (n) printf "%.0f", s/n/1024}')
  kina delete cluster --name b1 > /dev/null 2>&1 || true
  for c in b1; do kina-vm network rm -f net --cluster $c > /dev/null 2>&1 || true; rm -rf "$KINA_HOME/clusters/$c"; done
  t2=$(ms); kina create cluster --name b2 --config "$work/$topo.yaml" --wait 30m -q; t3=$(ms)
  echo "== $topo: create $(( (t3 - t2) / 1000 ))s, by hand $(( (t1 - t0) / 1000 ))s, ratio $(echo "scale=2; ($t3 - $t2) / ($t1 - $t0)" | bc), QEMU RSS per node ${rss} MiB"
  awk -F'\t' -v total=$((t3 - t2)) '{printf "   %-45s %7.1fs %5.1f%%\n", $1, $2/1000, 100*$2/total}' "$KINA_HOME/clusters/b2/create-steps.tsv"
  kina delete cluster --name b2 > /dev/null
done
