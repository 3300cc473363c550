package relay

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// needTool returns the path of a coturn tool (Debian's `coturn` package,
// installed by scripts/deps.sh); a missing one skips the test, or fails it
// when CI=true.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (Debian package coturn; scripts/deps.sh installs it): %v", name, err)
		}
		t.Skipf("%s is missing (Debian package coturn; scripts/deps.sh installs it)", name)
	}
	return p
}

// startTurnutilsPeer runs coturn's UDP echo peer on ip and returns its port.
func startTurnutilsPeer(t *testing.T, ip string) int {
	t.Helper()
	bin := needTool(t, "turnutils_peer")
	// A port that was free a moment ago: turnutils_peer cannot be asked for
	// port 0 and say which it got.
	probe, err := net.ListenPacket("udp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	_ = probe.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-L", ip, "-p", strconv.Itoa(port))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("turnutils_peer output:\n%s", out.String())
		}
	})
	// Wait until it listens (the port is then taken).
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.ListenPacket("udp4", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return port
		}
		_ = c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("turnutils_peer did not start on %s:%d:\n%s", ip, port, out.String())
	return 0
}

// uclientResult is what turnutils_uclient prints at its end.
type uclientResult struct {
	sent, received int
	out            string
}

var (
	uclientSent = regexp.MustCompile(`tot_send_msgs=(\d+)`)
	uclientRecv = regexp.MustCompile(`tot_recv_msgs=(\d+)`)
)

// runUclient runs turnutils_uclient against server with extra flags and
// returns its message counts; a run that does not finish within a minute fails.
func runUclient(t *testing.T, server net.Addr, user string, flags ...string) uclientResult {
	t.Helper()
	bin := needTool(t, "turnutils_uclient")
	u, p := creds(user)
	ap := netip.MustParseAddrPort(server.String())
	args := append([]string{"-u", u, "-w", p, "-p", strconv.Itoa(int(ap.Port()))}, flags...)
	args = append(args, ap.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	r := uclientResult{out: string(out)}
	if ctx.Err() != nil {
		t.Fatalf("turnutils_uclient %v did not finish:\n%s", args, out)
	}
	_ = err // it exits non-zero when the relay refused a permission; the counts say what happened
	if m := uclientSent.FindAllStringSubmatch(r.out, -1); len(m) > 0 {
		r.sent, _ = strconv.Atoi(m[len(m)-1][1])
	}
	if m := uclientRecv.FindAllStringSubmatch(r.out, -1); len(m) > 0 {
		r.received, _ = strconv.Atoi(m[len(m)-1][1])
	}
	return r
}

// TestTurnutilsUclient relays coturn's own TURN client (turnutils_uclient,
// a client nobody here wrote) through the relay to coturn's echo peer, over
// UDP and TCP, with channels and with Send indications; peers on loopback
// are relayed only when the lab allow list says so.
func TestTurnutilsUclient(t *testing.T) {
	needTool(t, "turnutils_uclient")
	const clients, msgs = 4, 40
	peer := "127.0.0.2" // 127.0.0.1 is the relay host's own address
	for _, tc := range []struct {
		name   string
		flags  []string
		kernel bool // Config.KernelOffload: the channels' packets go through the kernel
	}{
		{"udp-channels", nil, false},
		{"udp-send-indications", []string{"-s"}, false},
		{"tcp-channels", []string{"-t"}, false},
		{"udp-channels-kernel", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // uclient takes about 5 s however few packets it sends
			var s *Server
			if tc.kernel {
				s = newOffloadServer(t, Config{AllowPeers: loopback})
			} else {
				s, _ = newTestServer(t, Config{AllowPeers: loopback})
			}
			port := startTurnutilsPeer(t, peer)
			udp, tcp, _ := s.Addrs()
			server := udp
			if tc.flags != nil && tc.flags[0] == "-t" {
				server = tcp
			}
			flags := append([]string{"-c", "-m", strconv.Itoa(clients), "-n", strconv.Itoa(msgs),
				"-l", "120", "-z", "5", "-e", peer, "-r", strconv.Itoa(port)}, tc.flags...)
			got := runUclient(t, server, "alice", flags...)
			want := clients * msgs
			// UDP may lose a packet or two on a busy machine; TCP to the relay
			// still crosses UDP between relay and peer.
			if got.sent != want || got.received < want*95/100 {
				t.Fatalf("sent %d, echoed back %d; want %d and at least 95%% of them back\n%s",
					got.sent, got.received, want, got.out)
			}
			st := s.Stats()
			if st.RelayedBytes == 0 {
				t.Errorf("Stats.RelayedBytes = 0 after %d echoes", got.received)
			}
			if tr := s.traffic(); tc.kernel && (tr.kernelOut < uint64(want)*9/10 || tr.kernelIn < uint64(want)*9/10) {
				t.Errorf("the kernel forwarded %d packets to the peer and %d back, want most of the %d each way", tr.kernelOut, tr.kernelIn, want)
			}
			t.Logf("%s: sent %d, echoed %d, relayed %d bytes", tc.name, got.sent, got.received, st.RelayedBytes)
		})
	}
	t.Run("loopback-refused-without-lab-flag", func(t *testing.T) {
		t.Parallel()
		s, logs := newTestServer(t, Config{})
		port := startTurnutilsPeer(t, peer)
		udp, _, _ := s.Addrs()
		got := runUclient(t, udp, "alice", "-c", "-m", "1", "-n", "10", "-z", "5",
			"-e", peer, "-r", strconv.Itoa(port))
		if got.received != 0 {
			t.Fatalf("a loopback peer echoed %d packets through a relay without AllowPeers\n%s", got.received, got.out)
		}
		if s.Stats().RefusedPeers == 0 {
			t.Errorf("no refused peer counted; relay log:\n%s", logs.String())
		}
		if s.Stats().RelayedBytes != 0 {
			t.Errorf("relayed %d bytes to a refused peer", s.Stats().RelayedBytes)
		}
	})
}

// String is for test logs.
func (r uclientResult) String() string { return fmt.Sprintf("sent %d received %d", r.sent, r.received) }
