package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd units in deploy/ start `parley supernode` and `parley
// login-server` with flags this binary accepts, and (where systemd-analyze
// exists) systemd accepts the units, hardened alike.
func TestSystemdUnit(t *testing.T) {
	for _, u := range []struct {
		file, command string
		vars          map[string]string // what the unit's EnvironmentFile would set
	}{
		{"parley-supernode.service", "supernode", map[string]string{"${PARLEY_PUBLIC_ADDR}": "198.51.100.7"}},
		{"parley-login.service", "login-server", map[string]string{"${PARLEY_DOMAIN}": "login.example.net"}},
	} {
		t.Run(u.command, func(t *testing.T) {
			unit := filepath.Join("..", "..", "deploy", u.file)
			b, err := os.ReadFile(unit)
			must(t, err)
			text := strings.ReplaceAll(string(b), "\\\n", " ")
			var execStart string
			for _, line := range strings.Split(text, "\n") {
				if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
					execStart = v
				}
			}
			for k, v := range u.vars {
				execStart = strings.ReplaceAll(execStart, k, v)
			}
			args := strings.Fields(execStart)
			if len(args) < 2 || args[0] != "/usr/local/bin/parley" || args[1] != u.command {
				t.Fatalf("ExecStart = %q, want /usr/local/bin/parley %s ...", execStart, u.command)
			}
			// -h after the unit's flags: flag parsing reaches it only if every flag
			// before it is known.
			help, errOut, code := runParley(t, nil, append(args[1:], "-h")...)
			if code != 0 || !strings.Contains(help, "usage: parley "+u.command) {
				t.Fatalf("the unit's flags: exit %d\n%s%s", code, help, errOut)
			}
			// Hardened like the supernode's unit.
			for _, want := range []string{"User=", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
				"PrivateTmp=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "RestrictNamespaces=yes",
				"MemoryDenyWriteExecute=yes", "StateDirectoryMode=0700"} {
				if !strings.Contains(text, "\n"+want) {
					t.Errorf("%s lacks %s", u.file, want)
				}
			}
			if _, err := exec.LookPath("systemd-analyze"); err != nil {
				t.Log("systemd-analyze not installed: the unit's syntax is not checked")
				return
			}
			dir := t.TempDir()
			must(t, os.WriteFile(filepath.Join(dir, u.file),
				[]byte(strings.ReplaceAll(string(b), "/usr/local/bin/parley", parleyBin)), 0o644))
			out, err := exec.Command("systemd-analyze", "verify", filepath.Join(dir, u.file)).CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}
