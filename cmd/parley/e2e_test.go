package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/audiotest"
)

// The tests in this file build the real binary and drive it as a user or a
// script would: separate processes, real sockets on 127.0.0.1, WAV files in
// and out, JSON lines and exit codes.

var parleyBin string

// testRevision is the revision TestMain stamps the binary with.
var testRevision = "unknown"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	parleyBin = filepath.Join(dir, "parley")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		goBin = p
	}
	// Stamped as the Makefile does (docs/cli.md, "Version").
	if rev, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		testRevision = strings.TrimSpace(string(rev))
	}
	out, err := exec.Command(goBin, "build", "-ldflags", "-X main.revision="+testRevision, "-o", parleyBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building parley: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t testing.TB) string {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct ports on 127.0.0.1; see freePortsOn.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	return freePortsOn(t, "127.0.0.1", n)
}

// freePortsOn returns n distinct ports on the loopback address host, each
// free for both TCP and UDP when it was chosen (a TURN port listens on both).
// The sockets are held until all n are chosen, so the kernel cannot hand the
// same port out twice.
func freePortsOn(t testing.TB, host string, n int) []string {
	t.Helper()
	var addrs []string
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for len(addrs) < n {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			continue // taken for UDP: try another
		}
		held = append(held, pc)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// proc is a running parley process.
type proc struct {
	cmd    *exec.Cmd
	stdout *bytes.Buffer
	stderr *bytes.Buffer
	done   chan struct{}
	mu     sync.Mutex
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (p *proc) output() (string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String(), p.stderr.String()
}

// start runs parley with args and extra environment in the background; it is
// interrupted (then killed) at the end of the test.
func start(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	return startIn(t, "", env, args...)
}

// startIn is start inside network namespace ns ("" for this one).
func startIn(t testing.TB, ns string, env []string, args ...string) *proc {
	t.Helper()
	return startWith(t, ns, nil, env, args...)
}

// startWith is startIn with stdin (nil: none). Every JSON line the process
// prints on stdout is checked against the event schema at the end
// (checkEvents).
func startWith(t testing.TB, ns string, stdin *os.File, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	if ns == "" {
		p.cmd = exec.Command(parleyBin, args...)
	} else {
		p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, parleyBin}, args...)...)
	}
	p.cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		p.cmd.Stdin = stdin
	}
	p.cmd.Stdout = lockedBuffer{&p.mu, p.stdout}
	p.cmd.Stderr = lockedBuffer{&p.mu, p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		out, _ := p.output()
		checkEvents(t, args, out)
		if t.Failed() {
			out, errOut := p.output()
			t.Logf("parley %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out, errOut)
		}
	})
	return p
}

func (p *proc) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		out, errOut := p.output()
		t.Fatalf("parley %v still running after %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args[1:], d, out, errOut)
		return -1
	}
}

// runParley runs parley to completion.
func runParley(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runParleyIn(t, "", env, args...)
}

func runParleyIn(t testing.TB, ns string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	p := startIn(t, ns, env, args...)
	code = p.wait(t, 60*time.Second)
	stdout, stderr = p.output()
	return stdout, stderr, code
}

// upNetwork runs `parley up` on free ports and waits until echo is online.
func upNetwork(t testing.TB) (loginURL string) {
	t.Helper()
	return startUp(t).loginURL
}

// upNet is a running `parley up` that a test can crash and start again on
// the same ports and data.
type upNet struct {
	t        testing.TB
	args     []string
	snAddr   string
	loginURL string
	p        *proc
}

func startUp(t testing.TB) *upNet {
	t.Helper()
	ports := freePorts(t, 3)
	addr, snAddr, turnAddr := ports[0], ports[1], ports[2]
	u := &upNet{
		t:        t,
		args:     []string{"up", "--data", t.TempDir(), "--listen", addr, "--supernode-listen", snAddr, "--turn", turnAddr},
		snAddr:   snAddr,
		loginURL: "http://" + addr,
	}
	u.run()
	return u
}

func (u *upNet) run() {
	u.t.Helper()
	u.p = start(u.t, nil, u.args...)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + u.snAddr + "/healthz")
		if err == nil {
			var h struct{ Online int }
			json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if h.Online >= 1 { // the echo user is attached
				out, _ := u.p.output()
				if !strings.Contains(out, "register alice") || !strings.Contains(out, "call echo") {
					u.t.Fatalf("parley up printed no instructions:\n%s", out)
				}
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, errOut := u.p.output()
	u.t.Fatalf("parley up did not come up\nstdout:\n%s\nstderr:\n%s", out, errOut)
}

// crash kills `parley up` at once (SIGKILL): every connection to it drops.
func (u *upNet) crash() {
	u.p.cmd.Process.Kill()
	<-u.p.done
}

// restart starts it again after a crash, and waits until echo is online.
func (u *upNet) restart() {
	u.t.Helper()
	u.run()
}

// userEnv is the environment of one CLI user with their own home.
func userEnv(t testing.TB, loginURL, password string) []string {
	return []string{"PARLEY_LOGIN=" + loginURL, "PARLEY_HOME=" + t.TempDir(), "PARLEY_PASSWORD=" + password}
}

func writeWAV(t testing.TB, pcm []int16) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in.wav")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := codec.WriteWAV(f, pcm); err != nil {
		t.Fatal(err)
	}
	return p
}

func readWAV(t testing.TB, p string) []int16 {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pcm, err := codec.ReadWAV(f)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	return pcm
}

// jsonLines parses --json output, checking every line is an event object.
func jsonLines(t testing.TB, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if _, ok := m["ts"]; !ok {
			t.Errorf("event without ts: %s", line)
		}
		if _, ok := m["event"]; !ok {
			t.Errorf("event without event: %s", line)
		}
		evs = append(evs, m)
	}
	return evs
}

func TestCLICallRecordsWhatWasPlayed(t *testing.T) {
	loginURL := upNetwork(t)
	alice, bob := userEnv(t, loginURL, "alice-password"), userEnv(t, loginURL, "bob-password")
	for _, u := range []struct {
		name string
		env  []string
	}{{"alice", alice}, {"bob", bob}} {
		if out, errOut, code := runParley(t, u.env, "register", u.name); code != 0 {
			t.Fatalf("register %s: exit %d: %s%s", u.name, code, out, errOut)
		}
	}
	rec := filepath.Join(t.TempDir(), "bob.wav")
	listener := start(t, bob, "listen", "--answer", "--record", rec, "--calls", "1", "--json")
	waitOnline(t, listener)

	ref := append(append(audiotest.Speech(3, 2*time.Second), audiotest.Silence(time.Second)...), audiotest.Speech(4, time.Second)...)
	out, errOut, code := runParley(t, alice, "call", "bob", "--play", writeWAV(t, ref), "--json")
	if code != 0 {
		t.Fatalf("call: exit %d\n%s\n%s", code, out, errOut)
	}
	if c := listener.wait(t, 10*time.Second); c != 0 {
		t.Fatalf("listen exited %d", c)
	}

	evs := jsonLines(t, out)
	states := map[string]bool{}
	sawStats := false
	for _, ev := range evs {
		switch ev["event"] {
		case "call":
			for _, k := range []string{"call_id", "peer", "state", "reason"} {
				if _, ok := ev[k]; !ok {
					t.Errorf("call event without %s: %v", k, ev)
				}
			}
			states[fmt.Sprint(ev["state"])] = true
		case "stats":
			sawStats = true
			for _, k := range []string{"call_id", "packets_sent", "packets_received", "bytes_sent", "bytes_received", "loss", "jitter_ms", "rtt_ms", "path"} {
				if _, ok := ev[k]; !ok {
					t.Errorf("stats event without %s: %v", k, ev)
				}
			}
		}
	}
	for _, s := range []string{"ringing", "connected", "ended"} {
		if !states[s] {
			t.Errorf("caller's events have no %q call state:\n%s", s, out)
		}
	}
	if !sawStats {
		t.Errorf("no stats events:\n%s", out)
	}

	got := readWAV(t, rec)
	corr, lag := audiotest.MatchEnvelope(ref, got, time.Second)
	t.Logf("CLI call: envelope correlation %.3f at lag %v (%d samples recorded)", corr, lag, len(got))
	if corr < 0.9 {
		t.Errorf("recording correlates %.3f with what was played, want ≥ 0.9", corr)
	}
}

func waitOnline(t testing.TB, p *proc) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := p.output()
		if strings.Contains(out, `"event":"online"`) {
			return
		}
		select {
		case <-p.done:
			out, errOut := p.output()
			t.Fatalf("listener exited early:\n%s\n%s", out, errOut)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("listener never came online")
}

func TestCLIEchoPlaysBack(t *testing.T) {
	loginURL := upNetwork(t)
	alice := userEnv(t, loginURL, "alice-password")
	if _, errOut, code := runParley(t, alice, "register", "alice"); code != 0 {
		t.Fatalf("register: %s", errOut)
	}
	ref := append(audiotest.Speech(5, 3*time.Second), audiotest.Silence(500*time.Millisecond)...)
	back := filepath.Join(t.TempDir(), "back.wav")
	if out, errOut, code := runParley(t, alice, "call", "echo", "--play", writeWAV(t, ref), "--record", back); code != 0 {
		t.Fatalf("call echo: exit %d\n%s\n%s", code, out, errOut)
	}
	got := readWAV(t, back)
	corr, lag := audiotest.MatchEnvelope(ref, got, time.Second)
	t.Logf("echo: envelope correlation %.3f at lag %v", corr, lag)
	if corr < 0.9 {
		t.Errorf("echo came back with correlation %.3f, want ≥ 0.9", corr)
	}
}

// TestCLIErrors checks that what a user can get wrong ends with one clear line on
// stderr and a non-zero exit, never a panic.
func TestCLIErrors(t *testing.T) {
	loginURL := upNetwork(t)
	alice := userEnv(t, loginURL, "alice-password")
	if _, errOut, code := runParley(t, alice, "register", "alice"); code != 0 {
		t.Fatalf("register: %s", errOut)
	}
	carol := userEnv(t, loginURL, "carol-password")
	if _, errOut, code := runParley(t, carol, "register", "carol"); code != 0 {
		t.Fatalf("register: %s", errOut)
	}
	dave := userEnv(t, loginURL, "dave-password")
	if _, errOut, code := runParley(t, dave, "register", "dave"); code != 0 {
		t.Fatalf("register: %s", errOut)
	}
	// dave is online but declines calls (listen without --answer).
	waitOnline(t, start(t, dave, "listen", "--json"))

	corrupt := filepath.Join(t.TempDir(), "corrupt.wav")
	os.WriteFile(corrupt, []byte("RIFF\x10\x00\x00\x00WAVEfmt garbage"), 0o644)
	text := filepath.Join(t.TempDir(), "notes.wav")
	os.WriteFile(text, []byte("these are not the samples you are looking for"), 0o644)
	dead := "http://" + freePort(t)

	wrongPw := append(userEnv(t, loginURL, "not-her-password"), "PARLEY_USER=alice")
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"wrong password", wrongPw, []string{"login", "alice"}, "wrong user name or password"},
		// The login server does not tell a missing name from a wrong password.
		{"unknown user login", userEnv(t, loginURL, "whatever1"), []string{"login", "zed"}, "wrong user name or password"},
		{"call unknown user", alice, []string{"call", "nobody-here"}, "unknown user"},
		{"call offline user", alice, []string{"call", "carol"}, "offline"},
		{"call declined", alice, []string{"call", "dave"}, "declined"},
		{"corrupt wav", alice, []string{"call", "echo", "--play", corrupt}, "corrupt.wav"},
		{"not a wav", alice, []string{"call", "echo", "--play", text}, "WAV"},
		{"missing wav", alice, []string{"call", "echo", "--play", "/nonexistent.wav"}, "no such file"},
		{"login server unreachable", userEnv(t, dead, "pw-123456"), []string{"login", "alice"}, "unreachable"},
		{"bad user name", alice, []string{"call", "Not A User"}, "invalid user name"},
		{"unknown command", alice, []string{"frobnicate"}, "unknown command"},
		{"no password", []string{"PARLEY_LOGIN=" + loginURL, "PARLEY_HOME=" + t.TempDir(), "PARLEY_PASSWORD="}, []string{"login", "alice"}, "PARLEY_PASSWORD"},
		// Secrets never on the command line, where every user can read them.
		{"turn secret in argv", alice, []string{"relay", "--public-addr", "127.0.0.1", "--turn-secret", "sixteen-chars-or-more"}, "--turn-secret-file"},
		{"turn secret too short", append(alice, "PARLEY_TURN_SECRET=short"), []string{"relay", "--public-addr", "127.0.0.1"}, "at least 16"},
		{"missing turn secret file", alice, []string{"relay", "--public-addr", "127.0.0.1", "--turn-secret-file", "/nonexistent"}, "no such file"},
		{"database password in argv", alice, []string{"login-server", "--db", "postgres://parley:hunter2@127.0.0.1/parley"}, "PARLEY_DB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runParley(t, tt.env, tt.args...)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero; stderr: %s", errOut)
			}
			if strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine ") {
				t.Fatalf("stack trace on stderr:\n%s", errOut)
			}
			last := lastLine(errOut)
			if !strings.Contains(last, tt.want) {
				t.Errorf("stderr ends with %q, want it to mention %q\nwhole stderr:\n%s", last, tt.want, errOut)
			}
			t.Logf("%s → %s", strings.Join(tt.args, " "), last)
		})
	}
}

// secretFile writes a TURN secret to a file of the test's, for
// --turn-secret-file.
func secretFile(t testing.TB, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "turn-secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

var _ = context.Background

// TestCLIPasswd: passwd changes the password; the old one stops working, the
// new one works, and the home that changed it stays logged in.
func TestCLIPasswd(t *testing.T) {
	loginURL := upNetwork(t)
	env := userEnv(t, loginURL, "first-password")
	if _, errOut, code := runParley(t, env, "register", "pat"); code != 0 {
		t.Fatalf("register: %s", errOut)
	}
	out, errOut, code := runParley(t, append(env, "PARLEY_NEW_PASSWORD=second-password"), "passwd")
	if code != 0 || !strings.Contains(out, "password changed") {
		t.Fatalf("passwd: exit %d: %s%s", code, out, errOut)
	}
	other := func(pw string) []string {
		return []string{"PARLEY_LOGIN=" + loginURL, "PARLEY_HOME=" + t.TempDir(), "PARLEY_PASSWORD=" + pw}
	}
	if _, errOut, code := runParley(t, other("first-password"), "login", "pat"); code == 0 || !strings.Contains(errOut, "wrong user name or password") {
		t.Errorf("old password: exit %d, %q; want wrong password", code, lastLine(errOut))
	}
	if _, errOut, code := runParley(t, other("second-password"), "login", "pat"); code != 0 {
		t.Errorf("new password refused: %s", errOut)
	}
	// The home that changed the password still works without any password.
	noPw := []string{"PARLEY_LOGIN=" + loginURL, "PARLEY_HOME=" + env[1][len("PARLEY_HOME="):], "PARLEY_PASSWORD="}
	if _, errOut, code := runParley(t, noPw, "call", "echo", "--for", "1s"); code != 0 {
		t.Errorf("call after passwd from the same home: %s", errOut)
	}
}
