#!/usr/bin/env bash
# bench/startup/run.sh BUILD: start-up cost of every tool against jq.
# A workflow starts the tools hundreds of times, so each `--version` is timed
# against `jq --version` in the same rounds (hyperfine, -N, no shell), and one
# `kina-audit append` against the 5 ms target. Prints a ratio per tool.
# Target: every tool within 2x jq; a single append under 5 ms.
set -euo pipefail
build=${1:?usage: bench/startup/run.sh BUILD_DIR}
build=$(cd "$build" && pwd)
runs=${RUNS:-200}
command -v hyperfine >/dev/null || { echo "bench: hyperfine missing" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench: jq missing" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export KINA_HOME="$work/home"

cmds=("jq --version")
for t in audit kube image vm; do cmds+=("$build/tools/kina-$t/kina-$t --version"); done
# On a shared machine the load changes from second to second, so the runs are
# split into ROUNDS short rounds of every command, and each tool's ratio is
# the median of its per-round ratios against jq's median in the same round.
rounds=${ROUNDS:-10}
per=$(( (runs + rounds - 1) / rounds ))
for r in $(seq "$rounds"); do
  hyperfine -N -w 5 -r "$per" --export-json "$work/v$r.json" "${cmds[@]}" >/dev/null 2>&1
done
mkdir -p "$KINA_HOME"
hyperfine -N -w 5 -r "$runs" --export-json "$work/a.json" \
  "$build/tools/kina-audit/kina-audit append --tool bench --action startup" >/dev/null 2>&1

python3 - "$work/a.json" "$work"/v*.json <<'PY'
import json, statistics, sys
a = json.load(open(sys.argv[1]))["results"][0]
rounds = [json.load(open(f))["results"] for f in sys.argv[2:]]
print(f"{'command':<28} {'median ms':>10} {'x jq':>6}   ({len(rounds)} rounds; ratio = median of per-round ratios)")
for i, r in enumerate(rounds[0]):
    name = r["command"].split("/")[-1]
    ms = statistics.median(rd[i]["median"] for rd in rounds)
    ratio = statistics.median(rd[i]["median"] / rd[0]["median"] for rd in rounds)
    print(f"{name:<28} {ms*1e3:>10.2f} {ratio:>6.2f}")
print(f"{'kina-audit append':<28} {a['median']*1e3:>10.2f}  (target <= 5 ms median)")
PY
