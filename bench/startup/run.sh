#!/usr/bin/env bash
# bench/startup/run.sh BUILD: start-up cost of every tool against jq.
# A workflow starts the tools hundreds of times, so each `--version` is timed
# against `jq --version` in the same run (hyperfine, -N, no shell), and one
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
hyperfine -N -w 20 -r "$runs" --export-json "$work/v.json" "${cmds[@]}" >/dev/null 2>&1
mkdir -p "$KINA_HOME"
hyperfine -N -w 5 -r "$runs" --export-json "$work/a.json" \
  "$build/tools/kina-audit/kina-audit append --tool bench --action startup" >/dev/null 2>&1

python3 - "$work/v.json" "$work/a.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))["results"]
a = json.load(open(sys.argv[2]))["results"][0]
ref = v[0]["median"]
print(f"{'command':<28} {'median ms':>10} {'x jq':>6}")
for r in v:
    name = r["command"].split("/")[-1]
    print(f"{name:<28} {r['median']*1e3:>10.2f} {r['median']/ref:>6.2f}")
print(f"{'kina-audit append':<28} {a['median']*1e3:>10.2f}  (target <= 5 ms median)")
PY
