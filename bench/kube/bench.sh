#!/usr/bin/env bash
# bench/kube/bench.sh [BUILD_DIR]: time `kina-kube pki init` and `kina-kube sign`
# (ECDSA P-256 and RSA 2048) against openssl doing the same work in the same run:
#   pki init  = 3 x (openssl genpkey + openssl req -x509) + 1 x openssl genpkey RSA-2048 (the SA pair: always RSA, as kubeadm)
#   sign      = openssl genpkey + openssl req -new + openssl x509 -req with the CA (+ base64 into a file)
# kina's keys are sealed with the machine key (no passphrase: Argon2 would dominate).
# Prints mean times and the ratio kina/openssl. Uses hyperfine when installed.
set -eu -o pipefail
BUILD=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build}
KUBE="$BUILD/tools/kina-kube/kina-kube"
[ -x "$KUBE" ] || { echo "no $KUBE (build it first)" >&2; exit 66; }
W=$(mktemp -d "${TMPDIR:-/tmp}/kina-bench-kube.XXXXXX")
trap 'rm -rf "$W"' EXIT
export KINA_HOME="$W/home" HOME="$W"
unset KINA_PASSPHRASE KINA_PASSPHRASE_FILE
RUNS=${RUNS:-20}

cat > "$W/openssl-init.sh" <<'SH'
#!/bin/sh
# $1 = algorithm options for genpkey, $2 = output dir
set -e
d=$2; mkdir -p "$d/etcd"
for pair in "ca kubernetes" "front-proxy-ca front-proxy-ca" "etcd/ca etcd-ca"; do
  set -- $1 $pair
  f=$2 cn=$3
  openssl genpkey $ALG -out "$d/$f.key" 2>/dev/null
  openssl req -x509 -new -key "$d/$f.key" -subj "/CN=$cn" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
    -out "$d/$f.crt" 2>/dev/null
done
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/sa.key" 2>/dev/null
openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub"
SH
cat > "$W/openssl-sign.sh" <<'SH'
#!/bin/sh
# $1 = CA dir, $2 = output dir
set -e
openssl genpkey $ALG -out "$2/u.key" 2>/dev/null
openssl req -new -key "$2/u.key" -subj "/O=dev/CN=alice" -out "$2/u.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > "$2/ext"
openssl x509 -req -in "$2/u.csr" -CA "$1/ca.crt" -CAkey "$1/ca.key" -CAcreateserial -days 1 -sha256 -extfile "$2/ext" -out "$2/u.crt" 2>/dev/null
{ base64 -w0 "$1/ca.crt"; base64 -w0 "$2/u.crt"; base64 -w0 "$2/u.key"; } > "$2/kubeconfig"
SH
chmod +x "$W"/*.sh

mean() {  # mean seconds of a command, hyperfine or a loop
  if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$W/h.json" "$1" >/dev/null 2>&1
    jq -r '.results[0].mean' "$W/h.json"
  else
    local s e; s=$(date +%s.%N)
    for _ in $(seq "$RUNS"); do sh -c "$1" >/dev/null 2>&1; done
    e=$(date +%s.%N); echo "($e - $s) / $RUNS" | bc -l
  fi
}

printf '%-28s %12s %12s %8s\n' "operation" "kina (ms)" "openssl (ms)" "ratio"
for alg in ecdsa-p256 rsa-2048; do
  case $alg in
    ecdsa-p256) export ALG="-algorithm EC -pkeyopt ec_paramgen_curve:P-256" ;;
    rsa-2048) export ALG="-algorithm RSA -pkeyopt rsa_keygen_bits:2048" ;;
  esac
  "$KUBE" pki init --cluster b --algorithm "$alg" --force >/dev/null 2>&1
  "$KUBE" pki export --cluster b --dir "$W/ca" >/dev/null 2>&1
  mkdir -p "$W/o"
  k=$(mean "$KUBE pki init --cluster b --algorithm $alg --force")
  o=$(mean "$W/openssl-init.sh x $W/oi")
  printf '%-28s %12.1f %12.1f %8.2f\n' "pki init ($alg)" "$(echo "$k*1000" | bc -l)" "$(echo "$o*1000" | bc -l)" "$(echo "$k/$o" | bc -l)"
  "$KUBE" pki export --cluster b --dir "$W/ca" >/dev/null 2>&1
  k=$(mean "$KUBE sign --cluster b --user alice --group dev --server https://127.0.0.1:6443 --out $W/k.yaml")
  o=$(mean "$W/openssl-sign.sh $W/ca $W/o")
  printf '%-28s %12.1f %12.1f %8.2f\n' "sign ($alg)" "$(echo "$k*1000" | bc -l)" "$(echo "$o*1000" | bc -l)" "$(echo "$k/$o" | bc -l)"
done
