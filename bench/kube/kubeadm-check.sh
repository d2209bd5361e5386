#!/usr/bin/env bash
# Does a real kubeadm accept the PKI `kina-kube pki init` + `pki export` make?
#
# usage: bench/kube/kubeadm-check.sh BUILD_DIR [KUBEADM]
#   BUILD_DIR  a meson build dir with tools/kina-kube/kina-kube built
#   KUBEADM    kubeadm binary; default: `kubeadm` on PATH, else
#              /tmp/kubeadm-bin/kubeadm (bench/kube/build-kubeadm.sh builds it)
#   KADMCHECK  (env, optional) helper built by build-kubeadm.sh next to kubeadm
#              (bench/kube/kadmcheck/main.go): runs kubeadm's own
#              SharedCertificateExists (join --control-plane preflight),
#              UploadCerts/DownloadCerts (against a fake API server),
#              pubkeypin.Hash, the service-account JWT sign/verify path and the
#              bootstrap-token validator. Default: kadmcheck next to KUBEADM;
#              those checks are skipped when it is missing.
#
# For ecdsa-p256 and rsa-2048, in throwaway dirs (isolated KINA_HOME 0700,
# machine-key keystore): pki init, pki export, then kubeadm's certs phase
# (flags, twice, and with a config file), kubeconfig phase, certs
# check-expiration and certs renew; CA files must stay byte-identical and every
# leaf must verify against its CA with openssl. kubeadm is always given
# explicit dirs; /etc/kubernetes must not change. Prints PASS/FAIL per check
# and exits 1 if any check failed (2 on usage or setup errors). Not part of
# the test suite (CI has no kubeadm). Secrets never go on argv: the bootstrap
# token travels through pipes and a 0600 file only.
set -uo pipefail

usage() { echo "usage: $0 BUILD_DIR [KUBEADM]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
build=$1
kina_kube=$build/tools/kina-kube/kina-kube
[[ -x $kina_kube ]] || { echo "$0: $kina_kube not built" >&2; exit 2; }
kubeadm=${2:-}
if [[ -z $kubeadm ]]; then
    kubeadm=$(command -v kubeadm || true)
    [[ -n $kubeadm ]] || kubeadm=/tmp/kubeadm-bin/kubeadm
fi
[[ -x $kubeadm ]] || { echo "$0: no kubeadm at '$kubeadm' (see bench/kube/build-kubeadm.sh)" >&2; exit 2; }
kadmcheck=${KADMCHECK:-$(dirname "$kubeadm")/kadmcheck}
[[ -x $kadmcheck ]] || kadmcheck=
command -v openssl >/dev/null || { echo "$0: openssl needed" >&2; exit 2; }

umask 077
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kina-kubeadm-check.XXXXXX") || exit 2
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 130' INT TERM HUP

unset KINA_PASSPHRASE KINA_PASSPHRASE_FILE DBUS_SESSION_BUS_ADDRESS
export KINA_KEYSTORE=machine-key

pass=0 fail=0 skip=0
ok()   { pass=$((pass + 1)); printf 'PASS  %s\n' "$*"; }
bad()  { fail=$((fail + 1)); printf 'FAIL  %s\n' "$*"; }
skp()  { skip=$((skip + 1)); printf 'SKIP  %s\n' "$*"; }
# check NAME CMD...: PASS when CMD exits 0; on failure show its output
check() {
    local name=$1 out; shift
    if out=$("$@" 2>&1); then ok "$name"; else bad "$name"; indent <<<"$out"; fi
}
indent() { sed "s/^/      /"; }
note() { printf '      %s\n' "$*"; }

etc_state() {
    if [[ -e /etc/kubernetes ]]; then
        find /etc/kubernetes -printf '%p %y %m %s %T@\n' 2>/dev/null | sort | sha256sum
    else
        echo absent
    fi
}
etc_before=$(etc_state)

kver=$("$kubeadm" version -o short 2>/dev/null) || { echo "$0: '$kubeadm version' failed" >&2; exit 2; }
echo "kubeadm $kver ($kubeadm); kina-kube $kina_kube; kadmcheck ${kadmcheck:-none}"
echo "/etc/kubernetes before: $etc_before"

shared=(ca.crt ca.key front-proxy-ca.crt front-proxy-ca.key etcd/ca.crt etcd/ca.key sa.key sa.pub)
endpoint=127.0.0.1:6443
advertise=10.96.0.10

# kubeadm's log lines minus its harmless warning about docker on this host
kadm() { "$kubeadm" "$@" 2>&1 | grep -v 'cannot automatically set CgroupDriver'; return "${PIPESTATUS[0]}"; }

# verify CAFILE CERT [PURPOSE]
verify() {
    local purpose=()
    [[ -n ${3:-} ]] && purpose=(-purpose "$3")
    openssl verify -x509_strict "${purpose[@]}" -CAfile "$1" "$2"
}
# has_san CERT WORD...: every WORD appears in the certificate's SAN extension
has_san() {
    local sans w; sans=$(openssl x509 -in "$1" -noout -ext subjectAltName) || return 1
    shift
    for w in "$@"; do grep -qF -- "$w" <<<"$sans" || { echo "missing SAN $w in: $sans"; return 1; }; done
}
same_files() {  # same_files DIR_A DIR_B: the shared CA/sa files are byte-identical
    local f rc=0
    for f in "${shared[@]}"; do cmp -s "$1/$f" "$2/$f" || { echo "$f changed"; rc=1; }; done
    return $rc
}
key_alg() {  # key_alg KEYFILE -> ecdsa-p256 | rsa-2048 | other
    local t; t=$(openssl pkey -in "$1" -noout -text 2>/dev/null) || { echo unreadable; return; }
    if grep -q 'prime256v1\|P-256' <<<"$t"; then echo ecdsa-p256
    elif grep -q 'Private-Key: (2048 bit' <<<"$t" && grep -q 'modulus' <<<"$t"; then echo rsa-2048
    else echo other; fi
}
# kubeconfig_field FILE KEY: first base64 value of KEY, decoded
kubeconfig_field() { sed -n "s/^ *$2: *//p" "$1" | head -n1 | base64 -d; }

for alg in ecdsa-p256 rsa-2048; do
    echo
    echo "== $alg"
    w=$tmp/$alg
    mkdir -p "$w/home" && chmod 700 "$w/home"
    export KINA_HOME=$w/home
    d=$w/pki k=$w/kubeconfigs
    mkdir -p "$k"

    if ! "$kina_kube" pki init --cluster c1 --algorithm "$alg" >"$w/pki.json" 2>"$w/err"; then
        bad "$alg: kina-kube pki init"; indent <"$w/err"; continue
    fi
    ok "$alg: kina-kube pki init"
    if ! "$kina_kube" pki export --cluster c1 --dir "$d" >"$w/export.json" 2>"$w/err"; then
        bad "$alg: kina-kube pki export"; indent <"$w/err"; continue
    fi
    ok "$alg: kina-kube pki export --dir $d"
    cp -a "$d" "$w/orig"

    # what kina wrote: PEM types and key algorithm
    # CA keys in the PKI's algorithm, sa.key always RSA-2048 (as kubeadm makes
    # it); PEM types as kubeadm writes them: EC PRIVATE KEY / RSA PRIVATE KEY.
    for f in ca.key front-proxy-ca.key etcd/ca.key sa.key; do
        want=$alg
        [[ $f == sa.key ]] && want=rsa-2048
        a=$(key_alg "$d/$f")
        case $a in ecdsa-p256) hdr='-----BEGIN EC PRIVATE KEY-----' ;; *) hdr='-----BEGIN RSA PRIVATE KEY-----' ;; esac
        if [[ $a == "$want" ]] && head -n1 "$d/$f" | grep -qx -- "$hdr"; then
            ok "$alg: $f is $a (${hdr//-/})"
        else
            bad "$alg: $f is $a, want $want, first line $(head -n1 "$d/$f")"
        fi
    done

    # 1. certs phase with flags: must keep the CAs and sa, sign the leaves
    out=$(kadm init phase certs all --cert-dir "$d" --kubernetes-version "$kver" \
        --apiserver-advertise-address "$advertise" --apiserver-cert-extra-sans 127.0.0.1,kina.test \
        --control-plane-endpoint "$endpoint")
    rc=$?
    echo "$out" | grep -E 'Using existing|Using the existing|Generating "(ca|sa|front-proxy-ca|etcd/ca)"|error' | sed 's/^/      kubeadm: /'
    if [[ $rc -eq 0 ]]; then ok "$alg: kubeadm init phase certs all (flags) exit 0"
    else bad "$alg: kubeadm init phase certs all exit $rc"; indent <<<"$out"; fi
    for want in 'Using existing ca certificate authority' 'Using existing front-proxy-ca certificate authority' \
                'Using existing etcd/ca certificate authority' 'Using the existing "sa" key'; do
        if grep -qF -- "$want" <<<"$out"; then ok "$alg: kubeadm says '$want'"; else bad "$alg: kubeadm did not say '$want'"; fi
    done
    check "$alg: CA certs/keys and sa.key/sa.pub byte-identical after certs phase" same_files "$w/orig" "$d"
    check "$alg: openssl verify apiserver.crt against ca.crt" verify "$d/ca.crt" "$d/apiserver.crt" sslserver
    check "$alg: openssl verify apiserver-kubelet-client.crt against ca.crt" verify "$d/ca.crt" "$d/apiserver-kubelet-client.crt" sslclient
    check "$alg: openssl verify front-proxy-client.crt against front-proxy-ca.crt" verify "$d/front-proxy-ca.crt" "$d/front-proxy-client.crt" sslclient
    check "$alg: openssl verify etcd/server.crt against etcd/ca.crt" verify "$d/etcd/ca.crt" "$d/etcd/server.crt" sslserver
    check "$alg: openssl verify etcd/peer.crt against etcd/ca.crt" verify "$d/etcd/ca.crt" "$d/etcd/peer.crt"
    check "$alg: openssl verify etcd/healthcheck-client.crt against etcd/ca.crt" verify "$d/etcd/ca.crt" "$d/etcd/healthcheck-client.crt" sslclient
    check "$alg: openssl verify apiserver-etcd-client.crt against etcd/ca.crt" verify "$d/etcd/ca.crt" "$d/apiserver-etcd-client.crt" sslclient
    check "$alg: apiserver.crt SANs (10.96.0.1, $advertise, 127.0.0.1, kina.test, kubernetes.default.svc)" \
        has_san "$d/apiserver.crt" 'IP Address:10.96.0.1' "IP Address:$advertise" 'IP Address:127.0.0.1' 'DNS:kina.test' 'DNS:kubernetes.default.svc'
    note "leaf key from kubeadm: $(key_alg "$d/apiserver.key"); apiserver.crt signature: $(openssl x509 -in "$d/apiserver.crt" -noout -text | sed -n 's/^ *Signature Algorithm: //p' | head -n1)"

    # 2. again: kubeadm now loads every leaf and checks it against its CA
    out=$(kadm init phase certs all --cert-dir "$d" --kubernetes-version "$kver" \
        --apiserver-advertise-address "$advertise" --apiserver-cert-extra-sans 127.0.0.1,kina.test \
        --control-plane-endpoint "$endpoint")
    rc=$?
    n=$(grep -c 'Using existing .* certificate and key on disk' <<<"$out")
    if [[ $rc -eq 0 && $n -ge 7 ]] && ! grep -q 'Generating' <<<"$out"; then
        ok "$alg: second certs phase reuses all $n leaves (each validated against its CA)"
    else
        bad "$alg: second certs phase exit $rc, reused $n leaves"; indent <<<"$out"
    fi

    # 3. kubeconfig phase
    out=$(kadm init phase kubeconfig all --cert-dir "$d" --kubeconfig-dir "$k" --kubernetes-version "$kver" \
        --apiserver-advertise-address "$advertise" --control-plane-endpoint "$endpoint" --node-name kina-cp)
    rc=$?
    if [[ $rc -eq 0 ]]; then ok "$alg: kubeadm init phase kubeconfig all exit 0"
    else bad "$alg: kubeadm init phase kubeconfig all exit $rc"; indent <<<"$out"; fi
    for kc in admin kubelet controller-manager scheduler; do
        f=$k/$kc.conf
        [[ -s $f ]] || { bad "$alg: $kc.conf not written"; continue; }
        # v1.20 points controller-manager and scheduler at the local API endpoint
        server=$endpoint
        [[ $kc == controller-manager || $kc == scheduler ]] && server=$advertise:6443
        kubeconfig_field "$f" certificate-authority-data >"$w/kc-ca.crt"
        kubeconfig_field "$f" client-certificate-data >"$w/kc-client.crt"
        if cmp -s "$w/kc-ca.crt" "$d/ca.crt" && verify "$d/ca.crt" "$w/kc-client.crt" sslclient >/dev/null 2>&1 &&
           grep -q "server: https://$server\$" "$f"; then
            ok "$alg: $kc.conf embeds ca.crt, server https://$server, client cert verifies ($(openssl x509 -in "$w/kc-client.crt" -noout -subject | sed 's/^subject=//'))"
        else
            bad "$alg: $kc.conf: CA data, server (want https://$server) or client certificate wrong"; grep 'server:' "$f" | sed 's/^/     /'
        fi
    done
    check "$alg: CA files still byte-identical after kubeconfig phase" same_files "$w/orig" "$d"

    # 4. config-file mode on a fresh export: ClusterConfiguration.certificatesDir,
    #    InitConfiguration with kina's bootstrap token (validated by kubeadm)
    d2=$w/pki2
    if "$kina_kube" pki export --cluster c1 --dir "$d2" >/dev/null 2>"$w/err"; then
        tok=$("$kina_kube" token --cluster c1 2>"$w/err" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
        [[ -n $tok ]] || { bad "$alg: kina-kube token printed no token"; indent <"$w/err"; }
        {
            printf 'apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\n'
            printf 'bootstrapTokens:\n- token: "%s"\n' "$tok"
            printf 'localAPIEndpoint:\n  advertiseAddress: %s\nnodeRegistration:\n  name: kina-cp\n---\n' "$advertise"
            printf 'apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n'
            printf 'kubernetesVersion: %s\ncertificatesDir: %s\ncontrolPlaneEndpoint: %s\n' "$kver" "$d2" "$endpoint"
            printf 'apiServer:\n  certSANs: [127.0.0.1, kina.test]\n'
        } >"$w/init.yaml"
        out=$(kadm init phase certs all --config "$w/init.yaml" | sed "s/$tok/<token>/g")
        rc=$?  # pipefail: kubeadm's status
        if [[ $rc -eq 0 ]] && [[ $(grep -c 'Using existing .*certificate authority\|Using the existing "sa" key' <<<"$out") -eq 4 ]]; then
            ok "$alg: kubeadm init phase certs all --config (with kina's bootstrap token) keeps the 3 CAs and sa"
        else
            bad "$alg: kubeadm init phase certs all --config exit $rc"; indent <<<"$out"
        fi
        check "$alg: CA files byte-identical after config-mode certs phase" same_files "$w/orig" "$d2"
        check "$alg: config-mode apiserver.crt verifies against ca.crt" verify "$d2/ca.crt" "$d2/apiserver.crt" sslserver
        unset tok
    else
        bad "$alg: second pki export"; indent <"$w/err"
    fi

    # 5. certs check-expiration and renew (config file: certificatesDir = $d)
    printf 'apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\nkubernetesVersion: %s\ncertificatesDir: %s\ncontrolPlaneEndpoint: %s\n' \
        "$kver" "$d" "$endpoint" >"$w/cluster.yaml"
    out=$(kadm certs check-expiration --config "$w/cluster.yaml" --kubeconfig "$k/admin.conf")
    rc=$?
    grep -E '^(ca|etcd-ca|front-proxy-ca|apiserver) ' <<<"$out" | sed 's/^/      kubeadm: /'
    if [[ $rc -eq 0 ]] && grep -Eq '^ca +.* no' <<<"$out" && grep -Eq '^etcd-ca +.* no' <<<"$out" &&
       grep -Eq '^front-proxy-ca +.* no' <<<"$out" && grep -Eq '^apiserver +.* ca +no' <<<"$out"; then
        ok "$alg: kubeadm certs check-expiration reads the 3 CAs and the leaves (not externally managed)"
    else
        bad "$alg: kubeadm certs check-expiration exit $rc"; indent <<<"$out"
    fi
    note "(kubeconfig rows show !MISSING!: v1.20 reads them from /etc/kubernetes only)"
    before=$(openssl x509 -in "$d/apiserver.crt" -noout -serial)
    out=$(kadm certs renew apiserver --config "$w/cluster.yaml")
    rc=$?
    after=$(openssl x509 -in "$d/apiserver.crt" -noout -serial)
    if [[ $rc -eq 0 && $before != "$after" ]] && verify "$d/ca.crt" "$d/apiserver.crt" sslserver >/dev/null 2>&1; then
        ok "$alg: kubeadm certs renew apiserver signs a new apiserver.crt with kina's CA key"
    else
        bad "$alg: kubeadm certs renew apiserver exit $rc ($before -> $after)"; indent <<<"$out"
    fi
    check "$alg: CA files byte-identical after renew" same_files "$w/orig" "$d"

    # 6. kubeadm's own Go code for what the binary cannot run offline
    if [[ -n $kadmcheck ]]; then
        want=$(sed -n 's/.*"caCertHash":"\([^"]*\)".*/\1/p' "$w/pki.json")
        got=$("$kadmcheck" hash "$d" 2>&1)
        if [[ -n $want && $want == "$got" ]]; then ok "$alg: kina caCertHash == kubeadm pubkeypin.Hash(ca.crt) ($got)"
        else bad "$alg: caCertHash kina '$want' kubeadm '$got'"; fi
        check "$alg: sa.key (controller-manager loader) signs a SA token that sa.pub (apiserver loader) verifies" "$kadmcheck" sa "$d"
        if out=$("$kina_kube" token --cluster c1 2>&1 | sed -n 's/.*"token":"\([^"]*\)".*/\1/p' | "$kadmcheck" token 2>&1); then
            ok "$alg: kina-kube token accepted by cluster-bootstrap IsValidBootstrapToken"
        else bad "$alg: bootstrap token: $out"; fi
        check "$alg: kubeadm SharedCertificateExists (join --control-plane preflight on the exported PKI)" "$kadmcheck" shared "$w/orig"
        mkdir -p "$w/downloaded"
        if out=$("$kadmcheck" copycerts "$w/orig" "$w/downloaded" 2>&1) && same_files "$w/orig" "$w/downloaded" >/dev/null; then
            ok "$alg: kubeadm UploadCerts/DownloadCerts (init --upload-certs, join --certificate-key) round-trips the PKI"
        else
            bad "$alg: kubeadm UploadCerts/DownloadCerts (init --upload-certs, join --certificate-key)"; indent <<<"$out"
        fi
    else
        skp "$alg: kadmcheck checks (no kadmcheck next to kubeadm; build-kubeadm.sh builds it)"
    fi
done

echo
etc_after=$(etc_state)
if [[ $etc_after == "$etc_before" ]]; then ok "/etc/kubernetes unchanged ($etc_after)"
else bad "/etc/kubernetes changed: $etc_before -> $etc_after"; fi

echo
echo "kubeadm-check: $pass passed, $fail failed, $skip skipped"
[[ $fail -eq 0 ]]
