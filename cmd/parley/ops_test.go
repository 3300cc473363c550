package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCLIErrorsNameTheFlag: a server whose port is taken says which, and
// the flag that changes it, in one line; and nothing before it says that
// anything started or listens.
func TestCLIErrorsNameTheFlag(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer busy.Close()
	busyUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	defer busyUDP.Close()
	tcp, udp := busy.Addr().String(), busyUDP.LocalAddr().String()
	pub, _, _ := ed25519.GenerateKey(nil)
	key := base64.StdEncoding.EncodeToString(pub)
	secret := []string{"PARLEY_TURN_SECRET=0123456789abcdef"}
	sn := []string{"supernode", "--login", "http://127.0.0.1:1", "--login-key", key}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"login server", []string{"login-server", "--data", t.TempDir(), "--listen", tcp}, "listen on " + tcp + ": address already in use (change it with --listen)"},
		{"login server metrics", []string{"login-server", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--metrics-listen", tcp}, "(change it with --metrics-listen)"},
		{"supernode", append(sn, "--listen", tcp), "listen on " + tcp + ": address already in use (change it with --listen)"},
		{"supernode turn tcp", append(sn, "--listen", "127.0.0.1:0", "--turn-udp", "127.0.0.1:0", "--turn-tcp", tcp), "(change it with --turn-tcp)"},
		{"supernode turn udp", append(sn, "--listen", "127.0.0.1:0", "--turn-udp", udp), "listen on " + udp + ": address already in use (change it with --turn-udp)"},
		{"relay", []string{"relay", "--public-addr", "127.0.0.1", "--turn-udp", udp, "--turn-tcp", "off"}, "(change it with --turn-udp)"},
		{"up", []string{"up", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--supernode-listen", tcp}, "(change it with --supernode-listen)"},
		{"up turn", []string{"up", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--supernode-listen", "127.0.0.1:0", "--turn", udp}, "(change it with --turn)"},
		{"bad log format", []string{"login-server", "--log-format", "xml"}, "want text or json"},
		{"acme with a certificate", []string{"login-server", "--acme-domain", "login.example.net", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "drop --tls-cert"},
		{"acme for an IP address", []string{"login-server", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--acme-domain", "192.0.2.1", "--acme-http", "off"}, "is an IP address"},
		{"acme for another name than clients use", append(sn, "--acme-domain", "sn.example.net", "--public-addr", "203.0.113.9"), "--acme-domain sn.example.net and --public-addr 203.0.113.9 differ"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runParley(t, secret, tt.args...)
			if code == 0 {
				t.Fatalf("exit 0; stderr:\n%s", errOut)
			}
			if last := lastLine(errOut); !strings.Contains(last, tt.want) {
				t.Errorf("stderr ends with %q, want %q\n%s", last, tt.want, errOut)
			}
			for _, line := range strings.Split(errOut, "\n") {
				if strings.Contains(line, "listening") || strings.Contains(line, "started") || strings.Contains(line, "Parley is up") {
					t.Errorf("before failing to listen it said %q", line)
				}
			}
		})
	}
}

// TestLogFormatJSON: --log-format json makes every line a server logs a
// JSON object (slog's JSON handler), given before or after the command.
func TestLogFormatJSON(t *testing.T) {
	for _, args := range [][]string{
		{"login-server", "--log-format", "json", "--data", t.TempDir(), "--listen", "127.0.0.1:0"},
		{"--log-format", "json", "login-server", "--data", t.TempDir(), "--listen", "127.0.0.1:0"},
	} {
		p := start(t, nil, args...)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, errOut := p.output(); strings.Contains(errOut, "login server listening") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: never listening", args)
			}
			time.Sleep(50 * time.Millisecond)
		}
		p.cmd.Process.Signal(os.Interrupt)
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Errorf("%v: exit %d after an interrupt", args, code)
		}
		_, errOut := p.output()
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil || rec["level"] == nil || rec["time"] == nil {
				t.Errorf("%v: a log line that is not a JSON record: %q", args, line)
			}
			n++
		}
		t.Logf("%v: %d JSON records", args, n)
	}
}
