#!/bin/bash
# bench/cluster/ha.sh: issue 10's several-control-plane check, too slow for
# CI on 2 cores: `kina create cluster` with three control planes and a worker
# (behind `kina-node lb`), every node Ready, then the first control plane's VM
# stopped and the API still answering through the balancer (get nodes, a
# write: a ConfigMap), and the node brought back with `kina start cluster`.
# Prints each step's time and the QEMU RSS per node. Needs root, a built tree
# (scripts/bootstrap) and the node image (built on first use).
# Usage: bench/cluster/ha.sh [CONTROL_PLANES [WORKERS]]   (default 3 1)
# KINA_HA_CPUS=N gives every node N vCPUs through a kina/v1alpha1 config
# (default: kind's config, so the plan's default of 2).
# KINA_HA_RELAX=1 gives the control planes' static pods (etcd, API server,
# controller-manager, scheduler) liveness and startup probes that tolerate
# minutes without an answer instead of kubeadm's 80 s, through kubeadm's
# own patches directory (`patches.directory` of Init/JoinConfiguration, set
# by kubeadmConfigPatches) mounted read-only into every node (extraMounts):
# under TCG a loaded API server missed its probe and was restarted again and
# again (run 5 in bench/RESULTS.md). Config only: kina itself is unchanged.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
b=$src/build/tools
export PATH=$b/kina-node:$b/kina-vm:$b/kina-kube:$b/kina-image:$b/kina-audit:$src/tools/kina:$PATH
cps=${1:-3} workers=${2:-1}
work=$(mktemp -d /var/tmp/kina-bench-ha.XXXXXX)
export KINA_HOME=$work/home KUBECONFIG=$work/kubeconfig
export KINA_KERNEL_CACHE=${KINA_KERNEL_CACHE:-/tmp/kina-kernel-cache}
C=ha
K="kubectl --context kina-$C --request-timeout=60s"
trap 'kina delete cluster --name $C >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
ms() { date +%s%3N; }
secs() { echo "scale=1; ($2 - $1) / 1000" | bc; }
# until TIMEOUT_S CMD...: poll CMD every 5 s.
until_ok() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { echo "timed out: $*" >&2; return 1; }
    sleep 5
  done
}
all_ready() { [ "$($K get nodes --no-headers | awk '$2=="Ready"' | wc -l)" = "$((cps + workers))" ]; }

cpus=${KINA_HA_CPUS:-}
case $cpus in ''|[1-9]|[1-9][0-9]) ;; *) echo "KINA_HA_CPUS: not a vCPU count: $cpus" >&2; exit 64 ;; esac
relax=${KINA_HA_RELAX:-}
case $relax in ''|0|1) ;; *) echo "KINA_HA_RELAX: 0 or 1, not $relax" >&2; exit 64 ;; esac
[ "$relax" = 1 ] || relax=
if [ -n "$relax" ]; then
  mkdir -p "$work/patches"
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    printf 'spec:\n  containers:\n  - name: %s\n    livenessProbe:\n      failureThreshold: 40\n      timeoutSeconds: 30\n    startupProbe:\n      failureThreshold: 60\n      timeoutSeconds: 30\n' \
      "$c" > "$work/patches/$c+strategic.yaml"
  done
fi
node() {
  echo "- role: $1"
  [ -z "$cpus" ] || echo "  cpus: $cpus"
  [ -z "$relax" ] || printf '  extraMounts:\n  - hostPath: %s\n    containerPath: /etc/kina-patches\n    readOnly: true\n' "$work/patches"
}
{ echo "kind: Cluster"
  if [ -n "$cpus" ]; then echo "apiVersion: kina/v1alpha1"; else echo "apiVersion: kind.x-k8s.io/v1alpha4"; fi
  if [ -n "$relax" ]; then
    printf 'kubeadmConfigPatches:\n'
    for k in InitConfiguration JoinConfiguration; do
      printf -- '- |\n  kind: %s\n  patches:\n    directory: /etc/kina-patches\n' "$k"
    done
  fi
  echo "nodes:"
  for _ in $(seq "$cps"); do node control-plane; done
  for _ in $(seq "$workers"); do node worker; done; } > "$work/cluster.yaml"

kina-vm kernel > /dev/null 2>&1 || kina-vm kernel --fetch > /dev/null
kina build node-image > /dev/null 2>&1
t0=$(ms)
kina create cluster --name "$C" --config "$work/cluster.yaml" --wait 60m
t1=$(ms)
echo "== $cps+$workers: create $(secs "$t0" "$t1") s"
awk -F'\t' -v total=$((t1 - t0)) '{printf "   %-45s %7.1fs %5.1f%%\n", $1, $2/1000, 100*$2/total}' "$KINA_HOME/clusters/$C/create-steps.tsv"
$K get nodes -o wide
for p in $(pgrep -f "kina:$C/" || true); do
  printf '   %-50s %6d MiB\n' "$(tr '\0' ' ' < /proc/$p/cmdline | grep -o "kina:$C/[^ ,]*" | head -1)" "$(( $(ps -o rss= -p "$p") / 1024 ))"
done

first=$C-control-plane
t2=$(ms)
kina-vm stop "$first" --cluster "$C" --timeout 120s > /dev/null
t3=$(ms)
echo "== stopped $first in $(secs "$t2" "$t3") s"
$K get nodes
$K create configmap ha-check --from-literal=written=while-$first-was-down
[ "$($K get configmap ha-check -o jsonpath='{.data.written}')" = "while-$first-was-down" ]
echo "== the API answered with $first stopped (get nodes, a ConfigMap written and read back)"
until_ok 900 sh -c "$K get node $first --no-headers | grep -q NotReady"
echo "== $first reported NotReady after $(secs "$t3" "$(ms)") s; the API still answers"

t4=$(ms)
kina start cluster --name "$C"
until_ok 1800 all_ready
t5=$(ms)
echo "== kina start cluster: every node Ready again in $(secs "$t4" "$t5") s"
$K get nodes
$K get pods -n kube-system -o wide
