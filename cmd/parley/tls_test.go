package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/netlab"
)

// writeCert makes a self-signed certificate for ip (and host names) and
// returns the cert and key files; the cert doubles as the CA file clients are
// told to trust.
func writeCert(t *testing.T, ip net.IP, names ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "parley lab"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{ip}, DNSNames: names, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

// TestTLSRelayThroughStrictFirewall: the strictest firewall passes only TCP to
// port 443 (and the login server). The supernode serves its websocket over TLS
// and its relay over TLS on 443; a caller behind that firewall reaches both, and
// the call is tcp-relay through TURN over TLS. Clients and the login server
// trust the lab's certificate through SSL_CERT_FILE, as they would a real CA's.
func TestTLSRelayThroughStrictFirewall(t *testing.T) {
	lab := netlab.NewForTest(t)
	srv, err := lab.AddPublicHost("srv")
	must(t, err)
	ip := srv.IP.String()
	cert, key := writeCert(t, net.ParseIP(ip))
	loginURL := "http://" + ip + ":8080"
	// The login server dials the supernode back over TLS: it trusts the lab's
	// certificate the same way.
	startIn(t, srv.NS, []string{"SSL_CERT_FILE=" + cert}, "login-server", "--max-registrations-per-addr", "1000", "--listen", ip+":8080", "--data", t.TempDir(), "--supernode-allow", labAllow)
	sn := startIn(t, srv.NS, []string{"PARLEY_LOGIN=" + loginURL}, "supernode",
		"--listen", ip+":8443", "--public-addr", ip, "--tls-cert", cert, "--tls-key", key,
		"--turn-udp", ip+":3478", "--turn-tcp", ip+":3478", "--turn-tls", ip+":443",
		"--relay-allow-peer", "198.18.0.0/15")
	for i := 0; i < 200; i++ {
		if _, errOut := sn.output(); strings.Contains(errOut, "listed by the login server") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := &natLab{lab: lab, srv: srv, loginURL: loginURL}

	a, ra, err := lab.AddNATHost("ta", netlab.EndpointIndependent)
	must(t, err)
	must(t, ra.BlockUDP(443, 8080, 8443))
	b, _, err := lab.AddNATHost("tb", netlab.Symmetric)
	must(t, err)
	trust := "SSL_CERT_FILE=" + cert
	r := n.callWith(t, a, b, "tlsa", "tlsb", []string{trust})
	if r.corr < 0.9 {
		t.Errorf("recording correlates %.3f, want ≥ 0.9", r.corr)
	}
	if r.callerPath != "tcp-relay" || r.calleePath != "tcp-relay" {
		t.Errorf("paths %q/%q, want tcp-relay\n%s", r.callerPath, r.calleePath, r.callerOut)
	}
	proto := lastField(t, r.callerOut, "relay_protocol")
	t.Logf("caller reaches relay %s over %s", lastField(t, r.callerOut, "relay"), proto)
	if proto != "tls" {
		t.Errorf("caller reaches its relay over %q, want tls", proto)
	}
	if !strings.Contains(r.callerOut, `"supernode":"wss://`) {
		t.Errorf("the caller did not reach the supernode over TLS:\n%s", r.callerOut)
	}
}
