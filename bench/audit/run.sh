#!/usr/bin/env bash
# bench/audit/run.sh: kina-audit throughput and latency, with sha256sum over the
# same log as the reference for verification speed. Prints one line per metric.
#   usage: bench/audit/run.sh [BUILD_DIR]   (default: build)
# Needs: hyperfine, jq, python3. Targets (issue 2): verify >= 300k entries/s,
# batch append >= 20k events/s, single append <= 5 ms median.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
bin="$build/tools/kina-audit/kina-audit"
[ -x "$bin" ] || { echo "bench: build first (no $bin)" >&2; exit 66; }
work=$(mktemp -d "${TMPDIR:-/tmp}/kina-bench-audit.XXXXXX")
trap 'rm -rf "$work"' EXIT
export KINA_HOME="$work/home"
mkdir -m 700 "$KINA_HOME"
N=${BENCH_AUDIT_ENTRIES:-100000}
RUNS=${BENCH_AUDIT_RUNS:-500}

python3 - "$N" > "$work/events.jsonl" <<'PY'
import json, sys
n = int(sys.argv[1])
for i in range(n):
    print(json.dumps({"apiVersion": "kina/v1alpha1", "kind": "AuditEvent", "tool": "kina-vm", "action": "boot",
                      "cluster": "bench", "target": "node-%d" % i, "args": ["kina-vm", "boot", "--name", "node-%d" % i],
                      "details": {"image": "kindest/node:v1.31.0"}, "durationMs": 1234}, separators=(",", ":")))
PY

# 1. Batch append: N events in one process, one lock, one fsync.
log="$work/batch.jsonl"
t0=$(date +%s%N)
"$bin" --log "$log" append < "$work/events.jsonl" > /dev/null
t1=$(date +%s%N)
batch_s=$(echo "scale=6; ($t1 - $t0) / 1000000000" | bc)
printf 'batch append: %d events in %.3f s = %.0f events/s (one fsync)\n' "$N" "$batch_s" "$(echo "$N / $batch_s" | bc -l)"

# 2. Verify the N-entry log, and sha256sum over the same bytes, in the same run.
size=$(stat -c %s "$log")
hyperfine -N --warmup 2 --runs 10 --export-json "$work/verify.json" \
  "$bin --log $log verify" "sha256sum $log" > /dev/null
v_mean=$(jq '.results[0].mean' "$work/verify.json")
s_mean=$(jq '.results[1].mean' "$work/verify.json")
printf 'verify: %d entries (%d bytes) in %.3f s = %.0f entries/s\n' "$N" "$size" "$v_mean" "$(echo "$N / $v_mean" | bc -l)"
printf 'sha256sum over the same file: %.3f s; verify/sha256sum time ratio = %.2f\n' "$s_mean" "$(echo "$v_mean / $s_mean" | bc -l)"

# 3. Single-event CLI append latency: a whole process per event, as the kina script does.
hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$work/single.json" \
  "$bin --log $work/single.jsonl append --tool kina --action create --cluster bench" > /dev/null
jq -r '.results[0].times | sort | "single append: median \(.[length/2|floor]*1000 | .*1000|round/1000) ms, p99 \(.[(length*0.99)|floor]*1000 | .*1000|round/1000) ms over \(length) runs"' "$work/single.json"
"$bin" --log "$work/single.jsonl" verify > /dev/null && echo "single-append log verifies"
