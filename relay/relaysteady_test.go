package relay

// The forwarding-only phase of BenchmarkRelayBesideCoturn ("steady"): the
// Go load generator makes benchClients allocations with a channel each,
// waits, and only then counts the relay's CPU over benchSteadyFor of voice
// (one 100-byte packet every 20 ms per session, the sessions' phases spread
// evenly over the 20 ms, echoed by a peer). uclient's run counts the
// allocations' setup too; this counts forwarding alone, split into the
// relay's user and kernel time.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

const benchSteadyFor = 10 * time.Second

// benchDirect is the steady phase's baseline: the same load with no relay,
// each session sending its payload straight to the echo peer. The machine's
// own CPU and ksoftirqd's over it are the load's own cost, which the
// relays' runs subtract.
const benchDirect = "direct"

// procCPUParts returns the user and system CPU time of process pid so far.
func procCPUParts(pid int) (user, sys time.Duration) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut) * time.Second / clockTicks, time.Duration(st) * time.Second / clockTicks
}

// steadyResult is one forwarding-only run against one server.
type steadyResult struct {
	sent, recv      int
	user, sys, load time.Duration // the server's user and system time; the load generator's
	softirq         time.Duration // the kernel's ksoftirqd threads' (packets they delivered)
	base            time.Duration // load + softirq in the same round's baseline run, no relay
}

// total is the CPU of everything that moved the packets: the server, the
// load generator (whose sends deliver into the relay's sockets, on
// loopback in the sender's system call) and ksoftirqd. /proc/stat is not
// used: its time is sampled at the tick (250 Hz here), and a load that
// wakes each millisecond on a timer escapes the sampling.
func (r steadyResult) total() time.Duration { return r.user + r.sys + r.load + r.softirq }

// machinePerPacket is total less the baseline's, per forwarded packet: the
// relay's whole cost, wherever the kernel charged it.
func (r steadyResult) machinePerPacket() float64 {
	return us((r.total() - r.base) / time.Duration(max(r.fwd(), 1)))
}

func (r steadyResult) fwd() int { return r.sent + r.recv }

// perPacket is the server's CPU per forwarded packet, and its user and
// system parts.
func (r steadyResult) perPacket() (all, user, sys float64) {
	n := time.Duration(max(r.fwd(), 1))
	return us((r.user + r.sys) / n), us(r.user / n), us(r.sys / n)
}

func (r steadyResult) lossPct() float64 {
	if r.sent == 0 {
		return 0
	}
	return 100 * (1 - float64(r.recv)/float64(r.sent))
}

var steadyLine = regexp.MustCompile(`^STEADY sent=(\d+) recv=(\d+) user_ms=(\d+) sys_ms=(\d+) load_ms=(\d+) softirq_ms=(\d+)$`)

// steadyRun runs the "steady" role against server.
func steadyRun(b testing.TB, server string, d time.Duration) steadyResult {
	b.Helper()
	port, pid := freePort(b, "127.0.0.1"), 0
	if server != benchDirect {
		srv := startServer(b, server, port)
		defer srv.stop()
		pid = srv.cmd.Process.Pid
	}
	lines := make(chan string, 64)
	load := startPinned(b, 1, []string{"PARLEY_RELAYBENCH_ROLE=steady", "PARLEY_RELAYBENCH_PORT=" + strconv.Itoa(port),
		"PARLEY_RELAYBENCH_SERVER_PID=" + strconv.Itoa(pid), "PARLEY_RELAYBENCH_STEADY_FOR=" + d.String()}, lines, os.Args[0], "-test.run=^TestRelayBenchHelper$")
	defer load.stop()
	for l := range lines {
		m := steadyLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v := make([]int, len(m)-1)
		for i := range v {
			v[i], _ = strconv.Atoi(m[i+1])
		}
		ms := func(i int) time.Duration { return time.Duration(v[i]) * time.Millisecond }
		return steadyResult{sent: v[0], recv: v[1], user: ms(2), sys: ms(3), load: ms(4), softirq: ms(5)}
	}
	b.Fatalf("steady load against %s reported nothing:\n%s", server, load.out())
	return steadyResult{}
}

// benchSteady is the "steady" role: benchClients sessions on the server at
// addr, each with a channel to an echo peer in this process, then
// benchSteadyFor of voice. It prints one STEADY line: packets sent and
// echoed back, the server's user and system CPU, this process's CPU and
// ksoftirqd's, each in ms, over the voice alone. With no server
// pid it is the baseline: no relay, the sessions send straight to the peer.
func benchSteady(t *testing.T, addr string) {
	server := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr))
	serverPID, _ := strconv.Atoi(os.Getenv("PARLEY_RELAYBENCH_SERVER_PID"))
	d, err := time.ParseDuration(os.Getenv("PARLEY_RELAYBENCH_STEADY_FOR"))
	if err != nil {
		d = benchSteadyFor
	}
	peer := benchEchoPeer(t)

	u, p := creds("bench")
	clients := make([]*net.UDPConn, benchClients)
	var recv atomic.Int64
	msg := append([]byte{0x40, 0x00, 0, benchPayload}, make([]byte, benchPayload)...)
	to := server
	if serverPID == 0 {
		msg, to = msg[4:], net.UDPAddrFromAddrPort(peer)
	}
	for i := range clients {
		r := newRawTo(t, server)
		if serverPID == 0 {
			clients[i] = r.conn.(*net.UDPConn)
			go benchCount(ipv4.NewPacketConn(clients[i]), &recv)
			continue
		}
		if res := r.allocate(u, p); errorCode(res) != 0 {
			t.Fatalf("Allocate: error %d", errorCode(res))
		}
		if code := r.channelBind(0x4000, peerAttr(peer)); code != 0 {
			t.Fatalf("ChannelBind: error %d", code)
		}
		uc := r.conn.(*net.UDPConn)
		_ = uc.SetReadDeadline(time.Time{})
		clients[i] = uc
		go benchCount(ipv4.NewPacketConn(uc), &recv)
	}
	time.Sleep(time.Second) // the setup's work is done before counting starts
	recv.Store(0)
	self := os.Getpid()
	u0, s0 := procCPUParts(serverPID)
	self0, soft0 := procCPU(self), ksoftirqdCPU()
	const slots = 20 // one a millisecond: each session sends every 20 ms
	sent, done, start := 0, -1, time.Now()
	tk := time.NewTicker(time.Millisecond)
	for now := range tk.C {
		ms := int(now.Sub(start) / time.Millisecond)
		if now.Sub(start) >= d {
			break
		}
		for ; done < ms; done++ { // every slot owed, late ticks included
			for i := (done + 1) % slots; i < len(clients); i += slots {
				if _, err := clients[i].WriteTo(msg, to); err == nil {
					sent++
				}
			}
		}
	}
	tk.Stop()
	u1, s1 := procCPUParts(serverPID)
	selfCPU, soft := procCPU(self)-self0, ksoftirqdCPU()-soft0
	time.Sleep(300 * time.Millisecond) // the last echoes
	fmt.Printf("STEADY sent=%d recv=%d user_ms=%d sys_ms=%d load_ms=%d softirq_ms=%d\n", sent, recv.Load(),
		(u1 - u0).Milliseconds(), (s1 - s0).Milliseconds(), selfCPU.Milliseconds(), soft.Milliseconds())
}

// TestRelayBenchShort is `make test`'s short version of the relay
// benchmark: the forwarding-only phase for 1 s through Parley's relay
// (with the kernel offload too, as root), coturn, and its baseline, each a process pinned to a core as in `make
// bench`. It checks the benchmark's machinery and that the voice gets
// through (99% of the packets echoed back); it asserts no speed.
func TestRelayBenchShort(t *testing.T) {
	needTool(t, "turnserver")
	needTool(t, "taskset")
	if runtime.NumCPU() < 2 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs 2 cores: the relay on one, the load on the other")
		}
		t.Skip("needs 2 cores: the relay on one, the load on the other")
	}
	servers := []string{benchDirect, "coturn", "parley"}
	if os.Geteuid() == 0 || os.Getenv("CI") == "true" { // the kernel offload needs root
		servers = append(servers, "parley-tc")
	}
	var base time.Duration
	for _, s := range servers {
		r := steadyRun(t, s, time.Second)
		if s == benchDirect {
			base = r.total()
		}
		r.base = base
		all, user, sys := r.perPacket()
		t.Logf("%s: %d sent, %d echoed; %.2f µs a packet (user %.2f, system %.2f), %.2f µs whole", s, r.sent, r.recv, all, user, sys, r.machinePerPacket())
		if r.sent < benchClients*40 || r.recv < r.sent*99/100 {
			t.Errorf("%s: %d sent, %d echoed back; want 1 s of 200 sessions at 50 packets/s, 99%% echoed", s, r.sent, r.recv)
		}
	}
}

// ksoftirqdCPU is the CPU time of the kernel's ksoftirqd threads so far:
// softirq work (packet delivery) the kernel deferred to them.
func ksoftirqdCPU() time.Duration {
	var t time.Duration
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		comm, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		if err != nil || !strings.HasPrefix(string(comm), "ksoftirqd/") {
			continue
		}
		if pid, err := strconv.Atoi(d.Name()); err == nil {
			t += procCPU(pid)
		}
	}
	return t
}
