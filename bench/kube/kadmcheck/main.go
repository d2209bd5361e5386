// kadmcheck: calls kubeadm's and Kubernetes' own Go code (v1.20.2, from the
// Debian source tree that bench/kube/build-kubeadm.sh builds kubeadm from) on
// a PKI directory, for the checks the kubeadm binary cannot run offline.
// Built by build-kubeadm.sh inside that tree (GOPATH mode, vendored deps);
// used by kubeadm-check.sh. Not part of kina's build.
//
//	kadmcheck shared DIR   kubeadm's SharedCertificateExists (what
//	                       `kubeadm join --control-plane` without
//	                       --certificate-key runs on the pre-copied PKI)
//	kadmcheck hash DIR     kubeadm's discovery hash of DIR/ca.crt
//	                       (pubkeypin.Hash, as in --discovery-token-ca-cert-hash)
//	kadmcheck sa DIR       load DIR/sa.key as kube-controller-manager does and
//	                       DIR/sa.pub as kube-apiserver does, sign a
//	                       service-account JWT with the first and verify it
//	                       with the second (pkg/serviceaccount)
//	kadmcheck token        reads a bootstrap token on stdin (never argv) and
//	                       checks it with cluster-bootstrap's validator
//	kadmcheck copycerts SRC DST
//	                       kubeadm's UploadCerts from SRC and DownloadCerts
//	                       into DST through a fake API server (the
//	                       `init --upload-certs` / `join --control-plane
//	                       --certificate-key` path)
//
// Exit 0: accepted; 1: rejected (the error on stderr); 2: usage.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	certsphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/certs"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/copycerts"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"
	"k8s.io/kubernetes/pkg/serviceaccount"
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "kadmcheck: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	want := map[string]int{"shared": 3, "hash": 3, "sa": 3, "token": 2, "copycerts": 4}
	if len(os.Args) < 2 || want[os.Args[1]] != len(os.Args) {
		fmt.Fprintln(os.Stderr, "usage: kadmcheck shared|hash|sa DIR | kadmcheck copycerts SRC DST | kadmcheck token <TOKEN_ON_STDIN")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "shared":
		cfg := &kubeadmapi.ClusterConfiguration{CertificatesDir: os.Args[2]}
		ok, err := certsphase.SharedCertificateExists(cfg)
		if !ok || err != nil {
			fail("SharedCertificateExists: %v", err)
		}
		fmt.Println("SharedCertificateExists: ok")
	case "hash":
		certs, err := certutil.CertsFromFile(filepath.Join(os.Args[2], "ca.crt"))
		if err != nil {
			fail("%v", err)
		}
		fmt.Println(pubkeypin.Hash(certs[0]))
	case "sa":
		dir := os.Args[2]
		priv, err := keyutil.PrivateKeyFromFile(filepath.Join(dir, "sa.key"))
		if err != nil {
			fail("controller-manager would reject sa.key: %v", err)
		}
		pubs, err := keyutil.PublicKeysFromFile(filepath.Join(dir, "sa.pub"))
		if err != nil {
			fail("apiserver would reject sa.pub: %v", err)
		}
		gen, err := serviceaccount.JWTTokenGenerator(serviceaccount.LegacyIssuer, priv)
		if err != nil {
			fail("JWTTokenGenerator(sa.key): %v", err)
		}
		sa := v1.ServiceAccount{}
		sa.Namespace, sa.Name, sa.UID = "default", "kadmcheck", "00000000-0000-0000-0000-000000000001"
		sec := v1.Secret{}
		sec.Name = "kadmcheck-token"
		tok, err := gen.GenerateToken(serviceaccount.LegacyClaims(sa, sec))
		if err != nil {
			fail("GenerateToken: %v", err)
		}
		keys := make([]interface{}, 0, len(pubs))
		for _, p := range pubs {
			keys = append(keys, p)
		}
		auth := serviceaccount.JWTTokenAuthenticator(serviceaccount.LegacyIssuer, keys, nil,
			serviceaccount.NewLegacyValidator(false, nil))
		resp, ok, err := auth.AuthenticateToken(context.Background(), tok)
		if err != nil || !ok {
			fail("token signed with sa.key not verified with sa.pub: ok=%v err=%v", ok, err)
		}
		alg := strings.SplitN(tok, ".", 2)[0]
		fmt.Printf("sa: %T signed a token verified by sa.pub as %s (JOSE header %s)\n", priv, resp.User.GetName(), alg)
	case "copycerts":
		client := fake.NewSimpleClientset()
		key, err := copycerts.CreateCertificateKey()
		if err != nil {
			fail("CreateCertificateKey: %v", err)
		}
		up := &kubeadmapi.InitConfiguration{}
		up.CertificatesDir = os.Args[2]
		if err := copycerts.UploadCerts(client, up, key); err != nil {
			fail("UploadCerts: %v", err)
		}
		down := &kubeadmapi.InitConfiguration{}
		down.CertificatesDir = os.Args[3]
		if err := copycerts.DownloadCerts(client, down, key); err != nil {
			fail("DownloadCerts: %v", err)
		}
		fmt.Println("copycerts: uploaded and downloaded")
	case "token":
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			fail("reading the token from stdin: %v", err)
		}
		line = strings.TrimSpace(line)
		if !bootstraputil.IsValidBootstrapToken(line) {
			fail("not a valid bootstrap token (format [a-z0-9]{6}.[a-z0-9]{16})")
		}
		fmt.Println("bootstrap token: valid")
	default:
		fmt.Fprintln(os.Stderr, "kadmcheck: unknown check", os.Args[1])
		os.Exit(2)
	}
}
