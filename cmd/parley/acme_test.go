package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/internal/netlab"
)

// The names the ACME lab gives its servers. .test is reserved (RFC 6761):
// nothing outside the lab answers for it.
const (
	acmeCAName    = "acme.parley.test"
	acmeLoginName = "login.parley.test"
	acmeSNName    = "sn.parley.test"
)

// acmeCertLifetime is the lifetime of the certificates the lab's CA issues:
// short, so that each server renews its certificate during the test (at two
// thirds of it) and the first certificates expire before the test's second
// call.
const acmeCertLifetime = 30 * time.Second

// labHosts makes names resolve inside the lab: `ip netns exec NS` bind-mounts
// /etc/netns/NS/hosts over /etc/hosts for the program it starts (iproute2's
// convention), so every process the test starts in those namespaces (Pebble,
// the servers, the CLI) resolves the lab's names from that file, through Go's
// resolver like any other name. The files go when the test ends.
func labHosts(t *testing.T, names map[string]net.IP, hosts ...*netlab.Host) {
	t.Helper()
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for name, ip := range names {
		fmt.Fprintf(&b, "%s %s\n", ip, name)
	}
	for _, h := range hosts {
		dir := filepath.Join("/etc/netns", h.NS)
		must(t, os.MkdirAll(dir, 0o755))
		t.Cleanup(func() { os.RemoveAll(dir) })
		must(t, os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644))
	}
}

// logRecord is one line of a server's --log-format json log.
type logRecord map[string]any

// records returns the JSON log records with message msg in a server's stderr.
func records(errOut, msg string) []logRecord {
	var out []logRecord
	for _, line := range strings.Split(errOut, "\n") {
		var r logRecord
		if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func (r logRecord) time(t *testing.T, key string) time.Time {
	t.Helper()
	s, _ := r[key].(string)
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("log record %v: %s: %v", r, key, err)
	}
	return v
}

// waitRecords waits until p's stderr holds n records with message msg.
func waitRecords(t *testing.T, p *proc, msg string, n int, d time.Duration) []logRecord {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, errOut := p.output()
		if rs := records(errOut, msg); len(rs) >= n {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d %q records after %v:\n%s", n, msg, d, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestACMEIssuesAndRenewsCertificates: a login server and a supernode get
// their certificates from an ACME CA (Pebble, Let's Encrypt's test CA, with
// real challenge validation: tls-alpn-01 on the login server's port 443,
// http-01 on the supernode's port 80), with no certificate made by hand; the
// supernode's wss:// and its relay's TURN over TLS use it. A caller behind a
// firewall that lets only TCP to 443 and 8443 out calls through them; both
// servers renew their certificate; once the first certificates have
// expired, a second call goes through the renewed ones.
func TestACMEIssuesAndRenewsCertificates(t *testing.T) {
	pebble, err := exec.LookPath("pebble")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("pebble (Let's Encrypt's test CA) is not installed (CI=true: scripts/deps.sh installs it)")
		}
		t.Skip("skipping: pebble (Let's Encrypt's test CA) is not installed; scripts/deps.sh installs it as root")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed (CI=true: scripts/deps.sh installs it)")
		}
		t.Skip("skipping: curl is not installed; scripts/deps.sh installs it as root")
	}
	lab := netlab.NewForTest(t)
	ca, err := lab.AddPublicHost("ca")
	must(t, err)
	lsrv, err := lab.AddPublicHost("lsrv")
	must(t, err)
	ssrv, err := lab.AddPublicHost("ssrv")
	must(t, err)
	a, ra, err := lab.AddNATHost("aa", netlab.EndpointIndependent)
	must(t, err)
	must(t, ra.BlockUDP(443, 8443))
	b, _, err := lab.AddNATHost("ab", netlab.Symmetric)
	must(t, err)
	labHosts(t, map[string]net.IP{
		acmeCAName: net.IP(ca.IP.AsSlice()), acmeLoginName: net.IP(lsrv.IP.AsSlice()), acmeSNName: net.IP(ssrv.IP.AsSlice()),
	}, ca, lsrv, ssrv, a, b)

	// Pebble: its own HTTPS certificate (for acme.parley.test) is the one
	// thing made here; it validates challenges for real, on ports 80 and
	// 443 of the names, and issues certificates that live 30 s.
	caCert, caKey := writeCert(t, net.IP(ca.IP.AsSlice()), acmeCAName)
	dir := t.TempDir()
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
		"certificate": caCert, "privateKey": caKey, "httpPort": 80, "tlsPort": 443,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
		"certificateValidityPeriod": int(acmeCertLifetime / time.Second),
	}})
	confFile := filepath.Join(dir, "pebble.json")
	must(t, os.WriteFile(confFile, conf, 0o644))
	pb := exec.Command("ip", "netns", "exec", ca.NS, pebble, "-config", confFile)
	pb.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=0", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	var pbMu sync.Mutex
	var pbBuf bytes.Buffer
	pb.Stdout = lockedBuffer{&pbMu, &pbBuf}
	pb.Stderr = pb.Stdout
	must(t, pb.Start())
	t.Cleanup(func() {
		pb.Process.Kill()
		pb.Wait()
		if t.Failed() {
			pbMu.Lock()
			t.Logf("pebble:\n%s", pbBuf.String())
			pbMu.Unlock()
		}
	})
	directory := "https://" + acmeCAName + ":14000/dir"
	var root string
	for deadline := time.Now().Add(15 * time.Second); ; {
		// The CA's root, made when Pebble starts: what clients and servers
		// trust here, as they trust Let's Encrypt's root elsewhere.
		root, err = ca.Run("curl", "-sf", "--cacert", caCert, "https://"+acmeCAName+":15000/roots/0")
		if err == nil && strings.Contains(root, "BEGIN CERTIFICATE") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	caPEM, err := os.ReadFile(caCert)
	must(t, err)
	bundle := filepath.Join(dir, "trusted.pem")
	must(t, os.WriteFile(bundle, append(caPEM, root...), 0o644))
	trust := []string{"SSL_CERT_FILE=" + bundle}

	loginURL := "https://" + acmeLoginName
	lip, sip := lsrv.IP.String(), ssrv.IP.String()
	login := startIn(t, lsrv.NS, trust, "login-server", "--log-format", "json",
		"--listen", lip+":443", "--data", t.TempDir(), "--supernode-allow", labAllow, "--max-registrations-per-addr", "1000",
		"--acme-domain", acmeLoginName, "--acme-dir", directory, "--acme-http", "off")
	sn := startIn(t, ssrv.NS, append(trust, "PARLEY_LOGIN="+loginURL), "supernode", "--log-format", "json",
		"--listen", sip+":8443", "--public-addr", acmeSNName,
		"--acme-domain", acmeSNName, "--acme-dir", directory, "--acme-http", sip+":80", "--acme-cache", t.TempDir(),
		"--turn-udp", sip+":3478", "--turn-tcp", sip+":3478", "--turn-tls", sip+":443", "--relay-allow-peer", labAllow)
	start := time.Now()
	lcert := waitRecords(t, login, "acme: certificate obtained", 1, 30*time.Second)[0]
	scert := waitRecords(t, sn, "acme: certificate obtained", 1, 30*time.Second)[0]
	waitRecords(t, sn, "listed by the login server", 1, 30*time.Second)
	t.Logf("certificates obtained: login server %s by %s in %s, supernode %s by %s in %s; the supernode listed %v after the start",
		lcert["serial"], lcert["challenge"], lcert["took"], scert["serial"], scert["challenge"], scert["took"], time.Since(start).Round(time.Millisecond))
	// The login server has no port 80 listener: tls-alpn-01 on its 443; the
	// supernode prefers http-01 on its port 80.
	if lcert["challenge"] != "tls-alpn-01" || scert["challenge"] != "http-01" {
		t.Errorf("challenges: login server %v, supernode %v; want tls-alpn-01 and http-01", lcert["challenge"], scert["challenge"])
	}
	for _, p := range []*proc{login, sn} {
		_, errOut := p.output()
		for _, line := range strings.Split(errOut, "\n") {
			var r logRecord
			if line != "" && json.Unmarshal([]byte(line), &r) != nil {
				t.Errorf("a log line that is not JSON with --log-format json: %q", line)
			}
		}
	}

	n := &natLab{lab: lab, srv: ssrv, loginURL: loginURL}
	checkCall := func(r callResult) {
		t.Helper()
		if r.corr < 0.9 {
			t.Errorf("recording correlates %.3f, want ≥ 0.9", r.corr)
		}
		if proto := lastField(t, r.callerOut, "relay_protocol"); r.callerPath != "tcp-relay" || proto != "tls" {
			t.Errorf("caller path %q over %q, want tcp-relay over TURN-TLS", r.callerPath, proto)
		}
		if !strings.Contains(r.callerOut, `"supernode":"wss://`+acmeSNName+`:8443/v1/ws"`) {
			t.Errorf("the caller did not attach to wss://%s:8443:\n%s", acmeSNName, r.callerOut)
		}
	}
	checkCall(n.callWith(t, a, b, "acmea", "acmeb", trust))

	// Both renew two thirds into the certificate's life; the second call
	// comes after the first certificates have expired.
	lnew := waitRecords(t, login, "acme: certificate renewed", 1, acmeCertLifetime+30*time.Second)[0]
	snew := waitRecords(t, sn, "acme: certificate renewed", 1, acmeCertLifetime+30*time.Second)[0]
	for _, c := range []struct {
		what          string
		first, second logRecord
	}{{"login server", lcert, lnew}, {"supernode", scert, snew}} {
		renewAt, notAfter := c.first.time(t, "renew_at"), c.first.time(t, "not_after")
		t.Logf("%s: certificate %s valid until %s, renewed as %s (due %s)", c.what, c.first["serial"],
			notAfter.Format(time.TimeOnly), c.second["serial"], renewAt.Format(time.TimeOnly))
		if c.first["serial"] == c.second["serial"] || !c.second.time(t, "not_after").After(notAfter) {
			t.Errorf("%s: renewed certificate %v is not a newer one than %v", c.what, c.second, c.first)
		}
		if w := time.Until(notAfter); w > -time.Second {
			time.Sleep(w + time.Second)
		}
	}
	checkCall(n.callWith(t, a, b, "acmec", "acmed", trust))
	for _, p := range []*proc{login, sn} {
		if _, errOut := p.output(); strings.Contains(errOut, "acme: cannot get a certificate") {
			t.Errorf("a certificate request failed:\n%s", errOut)
		}
	}
}
