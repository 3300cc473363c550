package relay

// The side-by-side benchmark of `make bench`: Parley's relay, coturn
// (Debian's turnserver) and plain pion/turn, each pinned to core 0 with the
// load on core 1, in alternating rounds. docs/performance.md ("Relay beside
// coturn") explains the method and holds the numbers.
//
// Every process it measures is a child: coturn's turnserver and its tools
// (turnutils_uclient, turnutils_peer), and this test binary re-run in a
// helper role (TestRelayBenchHelper with PARLEY_RELAYBENCH_ROLE): "parley"
// and "pion" serve TURN on PARLEY_RELAYBENCH_PORT until stdin closes, "load"
// is a batched Go TURN load generator (the maximum rate: uclient paces
// itself and cannot push one core of relay to its limit), "spin" burns CPU
// (other work sharing the relay's core). "parley-tc" is "parley" with
// Config.KernelOffload (not in the default servers: PARLEY_RELAYBENCH_SERVERS).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

const (
	benchPeerIP   = "127.0.0.2"
	benchClients  = 200 // uclient sessions: one allocation and channel each
	benchPerCall  = 250 // packets each session sends, 20 ms apart (5 s of voice)
	benchPayload  = 100 // bytes of ChannelData payload
	benchMaxStep  = 2 * time.Second
	benchMaxLoss  = 0.005 // the one-core maximum is the highest rate with less loss than this
	benchLoadClis = 50    // sessions of the Go load generator
)

var benchServers = []string{"coturn", "pion", "parley"}

// clockTicks is USER_HZ, the unit of /proc/*/stat times (100 on Linux).
const clockTicks = 100

// procCPU returns the CPU time (user + system) of process pid so far.
func procCPU(pid int) time.Duration {
	user, sys := procCPUParts(pid)
	return user + sys
}

// machineBusy returns the busy CPU time of the whole machine (/proc/stat:
// every state but idle and iowait, over all cores).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var total int64
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest times are in user already
			total += v
		}
	}
	return time.Duration(total) * time.Second / clockTicks
}

// udpRcvbufErrors is the machine's count of UDP datagrams dropped because
// a socket's receive buffer was full (/proc/net/snmp): where loss happens.
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		if i := slices.Index(names, "RcvbufErrors"); i > 0 && i < len(f) {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			return v
		}
	}
	return 0
}

// TestRelayBenchHelper is not a test: it is this binary in one of the
// benchmark's helper roles, and returns at once otherwise.
func TestRelayBenchHelper(t *testing.T) {
	role := os.Getenv("PARLEY_RELAYBENCH_ROLE")
	port := os.Getenv("PARLEY_RELAYBENCH_PORT")
	addr := net.JoinHostPort("127.0.0.1", port)
	switch role {
	case "":
		t.Skip("a helper of BenchmarkRelayBesideCoturn")
	case "parley", "parley-tc": // parley-tc: with Config.KernelOffload
		s, err := New(Config{UDPAddr: addr, RelayIP: net.IPv4(127, 0, 0, 1), Secret: testSecret,
			AllowPeers: loopback, MaxAllocationsPerUser: -1, UserBandwidth: 1 << 30, KernelOffload: role == "parley-tc"})
		if err != nil {
			t.Fatal(err)
		}
		if role == "parley-tc" && s.offload == nil {
			t.Fatal("parley-tc: the kernel offload did not open (root, BPF and TCX needed)")
		}
		defer s.Close()
		if f := os.Getenv("PARLEY_RELAYBENCH_CPUPROFILE"); f != "" { // where the relay's time goes
			out, err := os.Create(f)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			if err := pprof.StartCPUProfile(out); err != nil {
				t.Fatal(err)
			}
			defer pprof.StopCPUProfile()
		}
		serveUntilStdinCloses()
	case "pion":
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		s, err := turn.NewServer(turn.ServerConfig{
			Realm: DefaultRealm, AuthHandler: turn.LongTermTURNRESTAuthHandler(string(testSecret), nil),
			LoggerFactory: quietPion,
			PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc, RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		serveUntilStdinCloses()
	case "load":
		benchLoad(t, addr)
	case "steady":
		benchSteady(t, addr)
	case "spin":
		var stop atomic.Bool
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop.Store(true) }()
		for x := 0; !stop.Load(); x++ {
			_ = x * x
		}
	default:
		t.Fatalf("unknown role %q", role)
	}
}

func serveUntilStdinCloses() {
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// benchProc is a child process of the benchmark.
type benchProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	output *strings.Builder
	mu     *sync.Mutex
}

// startPinned starts name args pinned to cpu (taskset), with stdout lines
// sent to lines (when not nil).
func startPinned(b testing.TB, cpu int, env []string, lines chan<- string, name string, args ...string) *benchProc {
	b.Helper()
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &benchProc{cmd: cmd, output: &strings.Builder{}, mu: &sync.Mutex{}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	p.stdin = stdin
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.output.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if lines != nil {
				lines <- sc.Text()
			}
		}
		if lines != nil {
			close(lines)
		}
	}()
	return p
}

// stop ends p (stdin closed, then SIGTERM) and returns its CPU time.
func (p *benchProc) stop() time.Duration {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

func (p *benchProc) out() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// startServer starts one of benchServers pinned to core 0 on port and
// waits until it answers STUN.
func startServer(b testing.TB, name string, port int) *benchProc {
	b.Helper()
	var p *benchProc
	switch name {
	case "coturn":
		p = startPinned(b, 0, nil, nil, "turnserver", "-n", "--listening-ip", "127.0.0.1",
			"-p", strconv.Itoa(port), "--relay-ip", "127.0.0.1", "--no-tls", "--no-dtls", "--no-tcp",
			"--use-auth-secret", "--static-auth-secret="+string(testSecret), "--realm", DefaultRealm,
			"--allow-loopback-peers", "--no-cli", "--no-stdout-log", "--log-file", "/dev/null", "--simple-log")
	case "alt": // another build of this binary's relay, PARLEY_RELAYBENCH_ALT (e.g. a branch's)
		if os.Getenv("PARLEY_RELAYBENCH_ALT") == "" {
			b.Fatal(`server "alt" needs PARLEY_RELAYBENCH_ALT, the path of another build's relay test binary (go test -c ./relay/)`)
		}
		p = startPinned(b, 0, []string{"PARLEY_RELAYBENCH_ROLE=parley", "PARLEY_RELAYBENCH_PORT=" + strconv.Itoa(port)},
			nil, os.Getenv("PARLEY_RELAYBENCH_ALT"), "-test.run=^TestRelayBenchHelper$")
	default:
		p = startPinned(b, 0, []string{"PARLEY_RELAYBENCH_ROLE=" + name, "PARLEY_RELAYBENCH_PORT=" + strconv.Itoa(port)},
			nil, os.Args[0], "-test.run=^TestRelayBenchHelper$")
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	buf := make([]byte, 1500)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		_, _ = conn.WriteTo(req.Raw, server)
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, _, err := conn.ReadFrom(buf); err == nil {
			return p
		}
	}
	p.stop()
	b.Fatalf("%s did not answer STUN on port %d:\n%s", name, port, p.out())
	return nil
}

// freePort returns a port of ip free a moment ago for UDP and TCP (a
// server that binds both and retries forever must not meet a busy one).
func freePort(b testing.TB, ip string) int {
	for range 100 {
		c, err := net.ListenPacket("udp4", ip+":0")
		if err != nil {
			b.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", net.JoinHostPort(ip, strconv.Itoa(port)))
		_ = c.Close()
		if err == nil {
			_ = l.Close()
			return port
		}
	}
	b.Fatal("no free port")
	return 0
}

// voiceResult is one uclient run against one server.
type voiceResult struct {
	sent, recv   int
	lossPct      float64
	serverCPU    time.Duration // the server process
	machineCPU   time.Duration // the whole machine, less the load generator
	loadCPU      time.Duration // uclient and turnutils_peer
	elapsed      time.Duration
	perPacket    time.Duration // serverCPU per forwarded packet
	perPacketAll time.Duration // machineCPU per forwarded packet
}

var uclientLoss = regexp.MustCompile(`Total lost packets (\d+) \(([0-9.]+)%\)`)

// voiceRun relays benchClients uclient sessions at 50 packets/s each
// through server; spin adds a CPU burner on the relay's core.
func voiceRun(b testing.TB, server string, spin bool) voiceResult {
	b.Helper()
	port, peerPort := freePort(b, "127.0.0.1"), freePort(b, benchPeerIP)
	srv := startServer(b, server, port)
	peer := startPinned(b, 1, nil, nil, "turnutils_peer", "-L", benchPeerIP, "-p", strconv.Itoa(peerPort))
	var spinner *benchProc
	if spin {
		spinner = startPinned(b, 0, []string{"PARLEY_RELAYBENCH_ROLE=spin"}, nil, os.Args[0], "-test.run=^TestRelayBenchHelper$")
	}
	time.Sleep(300 * time.Millisecond)
	u, p := creds("bench")
	srvBefore, busyBefore, start := procCPU(srv.cmd.Process.Pid), machineBusy(), time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	uc := exec.CommandContext(ctx, "taskset", "-c", "1", "turnutils_uclient", "-u", u, "-w", p,
		"-p", strconv.Itoa(port), "-c", "-l", strconv.Itoa(benchPayload), "-m", strconv.Itoa(benchClients),
		"-n", strconv.Itoa(benchPerCall), "-z", "20", "-e", benchPeerIP, "-r", strconv.Itoa(peerPort), "127.0.0.1")
	out, err := uc.CombinedOutput()
	r := voiceResult{elapsed: time.Since(start), serverCPU: procCPU(srv.cmd.Process.Pid) - srvBefore}
	busy := machineBusy() - busyBefore
	if spinner != nil {
		spinner.stop()
	}
	peerCPU := peer.stop()
	srv.stop()
	if err != nil && ctx.Err() != nil {
		b.Fatalf("uclient against %s: %v\n%s", server, err, out)
	}
	if m := uclientSent.FindAllSubmatch(out, -1); len(m) > 0 {
		r.sent, _ = strconv.Atoi(string(m[len(m)-1][1]))
	}
	if m := uclientRecv.FindAllSubmatch(out, -1); len(m) > 0 {
		r.recv, _ = strconv.Atoi(string(m[len(m)-1][1]))
	}
	if m := uclientLoss.FindSubmatch(out); m != nil {
		r.lossPct, _ = strconv.ParseFloat(string(m[2]), 64)
	}
	r.loadCPU = uc.ProcessState.UserTime() + uc.ProcessState.SystemTime() + peerCPU
	r.machineCPU = busy - r.loadCPU
	if spin {
		r.machineCPU = 0 // the burner's time is in it
	}
	if fwd := r.sent + r.recv; fwd > 0 {
		r.perPacket = r.serverCPU / time.Duration(fwd)
		r.perPacketAll = r.machineCPU / time.Duration(fwd)
	}
	if r.sent == 0 {
		b.Fatalf("uclient against %s sent nothing:\n%s", server, out)
	}
	return r
}

// maxStep is one rate of the Go load generator against one server.
type maxStep struct {
	target, sent, recv int // packets a second forwarded asked; packets sent and echoed
	loss               float64
	serverPct, loadPct float64 // CPU use of the server's and the load's core, in %
	rcvbufErrors       int     // datagrams the machine dropped at full socket buffers
}

var stepLine = regexp.MustCompile(`^STEP target=(\d+) sent=(\d+) recv=(\d+) server=([0-9.]+) load=([0-9.]+) rcvbuf_errors=(\d+)$`)

// maxRun steps the Go load generator's rate up against server until loss
// passes 2%, and returns every step.
func maxRun(b testing.TB, server string) []maxStep {
	b.Helper()
	defer steerLoopbackTo(b, 0)()
	port := freePort(b, "127.0.0.1")
	srv := startServer(b, server, port)
	defer srv.stop()
	lines := make(chan string, 64)
	load := startPinned(b, 1, []string{"PARLEY_RELAYBENCH_ROLE=load", "PARLEY_RELAYBENCH_PORT=" + strconv.Itoa(port),
		"PARLEY_RELAYBENCH_SERVER_PID=" + strconv.Itoa(srv.cmd.Process.Pid)}, lines, os.Args[0], "-test.run=^TestRelayBenchHelper$")
	var steps []maxStep
	for l := range lines {
		m := stepLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		var s maxStep
		s.target, _ = strconv.Atoi(m[1])
		s.sent, _ = strconv.Atoi(m[2])
		s.recv, _ = strconv.Atoi(m[3])
		s.serverPct, _ = strconv.ParseFloat(m[4], 64)
		s.loadPct, _ = strconv.ParseFloat(m[5], 64)
		s.rcvbufErrors, _ = strconv.Atoi(m[6])
		if s.sent > 0 {
			s.loss = 1 - float64(s.recv)/float64(s.sent)
		}
		steps = append(steps, s)
	}
	load.stop()
	if len(steps) == 0 {
		b.Fatalf("load generator against %s reported nothing:\n%s", server, load.out())
	}
	return steps
}

// steerLoopbackTo makes the kernel receive every loopback datagram on core
// cpu (RPS on lo) until the returned func restores the setting; without
// root it does nothing. Without it, a datagram is received (softirq) on
// the core of the process that sent it, so the generator's core did the
// receiving for the relay: a relay that forwards in the kernel (the
// offload) then ran entirely on the generator's core, and a socket relay
// was spared half its receive work, which a relay host on a network pays
// on its own cores. With it, the relay's core does all of it, the
// generator's receiving too (the same for every relay).
func steerLoopbackTo(b testing.TB, cpu int) func() {
	const f = "/sys/class/net/lo/queues/rx-0/rps_cpus"
	old, err := os.ReadFile(f)
	if err != nil || os.Geteuid() != 0 || os.Getenv("PARLEY_RELAYBENCH_RPS") == "0" {
		return func() {}
	}
	if err := os.WriteFile(f, []byte(strconv.FormatInt(1<<cpu, 16)), 0o644); err != nil {
		b.Logf("RPS on lo: %v", err)
		return func() {}
	}
	return func() { _ = os.WriteFile(f, bytes.TrimSpace(old), 0o644) }
}

// maxRate is the highest forwarded rate (packets/s, both directions) of
// steps with loss under benchMaxLoss, and the step.
func maxRate(steps []maxStep) (float64, maxStep) {
	best, at := 0.0, maxStep{}
	for _, s := range steps {
		if r := float64(s.sent+s.recv) / benchMaxStep.Seconds(); s.loss < benchMaxLoss && r > best {
			best, at = r, s
		}
	}
	return best, at
}

// benchLoad is the "load" role: benchLoadClis TURN sessions on the server
// at addr, each with a channel to one echo peer, sending 100-byte
// ChannelData with sendmmsg/recvmmsg at rising rates. Each step prints a
// STEP line: the rate asked (packets forwarded a second, both directions),
// packets sent and echoed back, and the CPU use of the server's process
// and of this one.
func benchLoad(t *testing.T, addr string) {
	server := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr))
	serverPID, _ := strconv.Atoi(os.Getenv("PARLEY_RELAYBENCH_SERVER_PID"))
	peer := benchEchoPeer(t)

	u, p := creds("bench")
	clients := make([]*net.UDPConn, benchLoadClis)
	var recv atomic.Int64
	for i := range clients {
		r := newRawTo(t, server)
		if res := r.allocate(u, p); errorCode(res) != 0 {
			t.Fatalf("Allocate: error %d", errorCode(res))
		}
		if code := r.channelBind(0x4000, peerAttr(peer)); code != 0 {
			t.Fatalf("ChannelBind: error %d", code)
		}
		uc := r.conn.(*net.UDPConn)
		_ = uc.SetReadBuffer(1 << 20)
		_ = uc.SetReadDeadline(time.Time{})
		clients[i] = uc
		go benchCount(ipv4.NewPacketConn(uc), &recv)
	}
	msg := binary.BigEndian.AppendUint16(nil, 0x4000)
	msg = binary.BigEndian.AppendUint16(msg, benchPayload)
	msg = append(msg, make([]byte, benchPayload)...)
	const tick = 5 * time.Millisecond
	const batch = 64 // datagrams a GSO send
	burst := bytes.Repeat(msg, batch)
	oob := gsoOOB(len(msg))
	gso := benchGSO()
	ms := make([]ipv4.Message, batch) // without GSO: one sendmmsg of single datagrams
	for i := range ms {
		ms[i] = ipv4.Message{Buffers: [][]byte{msg}, Addr: server}
	}
	self := os.Getpid()
	for _, target := range []int{20e3, 40e3, 60e3, 80e3, 100e3, 120e3, 140e3, 160e3, 180e3, 200e3, 240e3, 280e3, 320e3, 400e3, 480e3, 560e3, 640e3, 800e3} {
		perTick := float64(target) / 2 * tick.Seconds() / benchLoadClis // client sends per tick per client
		recv.Store(0)
		sent, owed := 0, 0.0
		srvBefore, selfBefore, start := procCPU(serverPID), procCPU(self), time.Now()
		rcvErrs := udpRcvbufErrors()
		tk := time.NewTicker(tick)
		for time.Since(start) < benchMaxStep {
			<-tk.C
			owed += perTick
			n := int(owed)
			owed -= float64(n)
			for _, c := range clients {
				for left := n; left > 0; {
					k := min(left, batch)
					var err error
					switch {
					case !gso:
						k, err = ipv4.NewPacketConn(c).WriteBatch(ms[:k], 0)
					case k == 1:
						_, err = c.WriteTo(msg, server)
					default:
						_, _, err = c.WriteMsgUDP(burst[:k*len(msg)], oob, server)
					}
					if err != nil || k == 0 {
						break
					}
					left -= k
					sent += k
				}
			}
		}
		tk.Stop()
		elapsed := time.Since(start)
		srvCPU, selfCPU := procCPU(serverPID)-srvBefore, procCPU(self)-selfBefore
		time.Sleep(300 * time.Millisecond) // the last echoes
		got := int(recv.Load())
		fmt.Printf("STEP target=%d sent=%d recv=%d server=%.1f load=%.1f rcvbuf_errors=%d\n", target, sent, got,
			100*srvCPU.Seconds()/elapsed.Seconds(), 100*selfCPU.Seconds()/elapsed.Seconds(), udpRcvbufErrors()-rcvErrs)
		if sent > 0 && float64(got)/float64(sent) < 0.98 {
			break
		}
	}
}

// benchEchoPeer starts an echo peer on benchPeerIP (closed with t) and
// returns its address.
func benchEchoPeer(t *testing.T) netip.AddrPort {
	peerConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(benchPeerIP)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peerConn.Close() })
	_ = peerConn.SetReadBuffer(8 << 20)
	_ = peerConn.SetWriteBuffer(8 << 20)
	go benchEcho(ipv4.NewPacketConn(peerConn))
	return addrPort(peerConn.LocalAddr().(*net.UDPAddr))
}

// benchEcho echoes every datagram to its sender, in batches: a run of
// datagrams of one size from one sender goes back as one GSO send
// (UDP_SEGMENT), which the kernel splits into datagrams at the receiving
// socket. The relay under test receives ordinary datagrams either way; GSO
// only makes the load cheaper, so that at the maximum the generator's core
// is not the bottleneck.
func benchEcho(pc *ipv4.PacketConn) {
	gso := benchGSO()
	in := make([]ipv4.Message, 64)
	out := make([]ipv4.Message, 64)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	iovs := make([][]byte, 64)
	for {
		n, err := pc.ReadBatch(in, 0)
		if err != nil {
			return
		}
		k := 0
		for i := 0; i < n; {
			j := i + 1
			for gso && j < n && in[j].N == in[i].N && sameUDPAddr(in[j].Addr, in[i].Addr) {
				j++
			}
			for x := i; x < j; x++ {
				iovs[x] = in[x].Buffers[0][:in[x].N]
			}
			out[k] = ipv4.Message{Buffers: iovs[i:j], Addr: in[i].Addr}
			if j-i > 1 {
				out[k].OOB = gsoOOB(in[i].N)
			}
			k++
			i = j
		}
		for done := 0; done < k; {
			w, err := pc.WriteBatch(out[done:k], 0)
			if err != nil {
				return
			}
			done += w
		}
	}
}

// benchGSO reports whether the load sends with GSO
// (PARLEY_RELAYBENCH_GSO=1). Off by default: the kernel offload's program
// leaves GSO packets to the relay's sockets, so with GSO the maximum would
// not measure it; with the receiving steered to the relay's core (RPS) the
// generator's core has room enough without it.
func benchGSO() bool { return os.Getenv("PARLEY_RELAYBENCH_GSO") == "1" }

func sameUDPAddr(a, b net.Addr) bool {
	x, ok1 := a.(*net.UDPAddr)
	y, ok2 := b.(*net.UDPAddr)
	return ok1 && ok2 && x.Port == y.Port && x.IP.Equal(y.IP)
}

// gsoOOB is the control message of a GSO send: split the payload into
// datagrams of seg bytes (UDP_SEGMENT).
func gsoOOB(seg int) []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(seg))
	return b
}

// benchCount counts ChannelData datagrams arriving at a client.
func benchCount(pc *ipv4.PacketConn, n *atomic.Int64) {
	in := make([]ipv4.Message, 64)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	for {
		k, err := pc.ReadBatch(in, 0)
		if err != nil {
			return
		}
		n.Add(int64(k))
	}
}

// BenchmarkRelayBesideCoturn is `make bench`'s relay comparison; run it
// with -benchtime 1x (PARLEY_RELAYBENCH_ROUNDS rounds, default 3; about 4
// minutes a round). It needs 2 cores, taskset and Debian's coturn.
func BenchmarkRelayBesideCoturn(b *testing.B) {
	for _, tool := range []string{"taskset", "turnserver", "turnutils_uclient", "turnutils_peer"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is missing (Debian packages util-linux, coturn; scripts/deps.sh)", tool)
		}
	}
	if runtime.NumCPU() < 2 {
		b.Skip("needs 2 cores: the relay on one, the load on the other")
	}
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("PARLEY_RELAYBENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	servers := benchServers
	if os.Geteuid() == 0 { // the kernel offload needs root
		servers = append(slices.Clone(servers), "parley-tc")
	}
	if v := os.Getenv("PARLEY_RELAYBENCH_SERVERS"); v != "" { // e.g. "parley" alone, to profile it
		servers = strings.Split(v, ",")
	}
	phases := os.Getenv("PARLEY_RELAYBENCH_PHASES") // "" = all: steady,voice,busy,max
	phase := func(p string) bool { return phases == "" || strings.Contains(phases, p) }
	voice := map[string][]voiceResult{}
	busy := map[string][]voiceResult{}
	maxes := map[string][]float64{}
	steady := map[string][]steadyResult{}
	for round := range rounds {
		order := slices.Clone(servers)
		for range round {
			order = append(order[1:], order[0]) // alternate who goes first
		}
		var base steadyResult
		if phase("steady") {
			base = steadyRun(b, benchDirect, benchSteadyFor)
			fmt.Printf("round %d baseline, no relay: %d sent %d echoed, load %v, ksoftirqd %v\n", round+1, base.sent, base.recv, base.load, base.softirq)
		}
		for _, s := range order {
			if !phase("steady") {
				break
			}
			r := steadyRun(b, s, benchSteadyFor)
			r.base = base.total()
			steady[s] = append(steady[s], r)
			all, user, sys := r.perPacket()
			fmt.Printf("round %d %-6s forwarding only: %6d sent %6d echoed, loss %.3f%%, server %.2f µs/pkt (user %.2f, system %.2f), everything less baseline %.2f µs/pkt\n",
				round+1, s, r.sent, r.recv, r.lossPct(), all, user, sys, r.machinePerPacket())
		}
		for _, s := range order {
			if !phase("voice") {
				break
			}
			r := voiceRun(b, s, false)
			voice[s] = append(voice[s], r)
			fmt.Printf("round %d %-6s voice: %6d sent %6d echoed, loss %.3f%%, server %v CPU = %.2f µs/pkt, machine less load %.2f µs/pkt, load %v\n",
				round+1, s, r.sent, r.recv, r.lossPct, r.serverCPU.Round(10*time.Millisecond), us(r.perPacket), us(r.perPacketAll), r.loadCPU.Round(10*time.Millisecond))
		}
		for _, s := range order {
			if !phase("busy") {
				break
			}
			r := voiceRun(b, s, true)
			busy[s] = append(busy[s], r)
			fmt.Printf("round %d %-6s voice with a CPU burner on its core: loss %.3f%%, server %.2f µs/pkt\n", round+1, s, r.lossPct, us(r.perPacket))
		}
		for _, s := range order {
			if !phase("max") {
				break
			}
			steps := maxRun(b, s)
			best, at := maxRate(steps)
			maxes[s] = append(maxes[s], best)
			last := steps[len(steps)-1]
			fmt.Printf("round %d %-6s max: %.0f pkt/s with loss < %.1f%% (server core %.0f%%, load core %.0f%%); last step %d asked: loss %.2f%%, server %.0f%%, load %.0f%%, %d dropped at full socket buffers\n",
				round+1, s, best, 100*benchMaxLoss, at.serverPct, at.loadPct, last.target, 100*last.loss, last.serverPct, last.loadPct, last.rcvbufErrors)
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	cpu := func(rs []voiceResult, all bool) []float64 {
		var v []float64
		for _, r := range rs {
			if all {
				v = append(v, us(r.perPacketAll))
			} else {
				v = append(v, us(r.perPacket))
			}
		}
		return v
	}
	loss := func(rs []voiceResult) []float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, r.lossPct)
		}
		return v
	}
	if phase("steady") {
		fmt.Printf("\nForwarding only (allocations made before counting):\n| relay | µs CPU/packet (process) | ratio to coturn | user | system | µs/packet, relay + load + ksoftirqd less baseline | ratio | loss |\n|---|---|---|---|---|---|---|---|\n")
		part := func(s string, i int) []float64 {
			var v []float64
			for _, r := range steady[s] {
				a, u, y := r.perPacket()
				v = append(v, []float64{a, u, y, r.machinePerPacket(), r.lossPct()}[i])
			}
			return v
		}
		cs, cm := med(part("coturn", 0)), med(part("coturn", 3))
		for _, s := range servers {
			a, m := med(part(s, 0)), med(part(s, 3))
			fmt.Printf("| %s | %.2f (%s) | %.2f× | %.2f | %.2f | %.2f (%s) | %.2f× | %.3f%% |\n", s, a, spread(part(s, 0)), a/cs,
				med(part(s, 1)), med(part(s, 2)), m, spread(part(s, 3)), m/cm, med(part(s, 4)))
			if s == "parley" {
				b.ReportMetric(a/cs, "steady-cpu-ratio")
			}
		}
	}
	fmt.Printf("\n| relay | µs CPU/packet (process) | ratio to coturn | µs/packet (machine less load) | one-core max pkt/s | ratio | loss at voice load | loss, core shared |\n|---|---|---|---|---|---|---|---|\n")
	cc, ca, cm := med(cpu(voice["coturn"], false)), med(cpu(voice["coturn"], true)), med(maxes["coturn"])
	for _, s := range servers {
		p, a, m := med(cpu(voice[s], false)), med(cpu(voice[s], true)), med(maxes[s])
		fmt.Printf("| %s | %.2f (%s) | %.2f× | %.2f | %.0f (%s) | %.2f× | %.3f%% | %.3f%% (%s) |\n", s, p, spread(cpu(voice[s], false)),
			p/cc, a, m, spread(maxes[s]), m/cm, med(loss(voice[s])), med(loss(busy[s])), spread(loss(busy[s])))
		if s == "parley" {
			b.ReportMetric(p/cc, "cpu-ratio")
			b.ReportMetric(a/ca, "machine-cpu-ratio")
			b.ReportMetric(m/cm, "max-ratio")
		}
	}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// spread is the range of v, e.g. "10.6–11.5".
func spread(v []float64) string {
	if len(v) == 0 {
		return ""
	}
	f := "%.2f–%.2f"
	if slices.Max(v) >= 1000 {
		f = "%.0f–%.0f"
	}
	return fmt.Sprintf(f, slices.Min(v), slices.Max(v))
}
