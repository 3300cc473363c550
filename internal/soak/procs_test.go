package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/internal/netlab"
	"github.com/parley/parley/supernode"
)

// memLimit is each supernode child's GOMEMLIMIT, the memory limit the
// cascade must keep the survivors under (its peak resident memory).
const memLimit = 256 << 20

// snProc is one supernode slot: a lab host, port and node key kept across
// restarts, and the process running now (nil while killed).
type snProc struct {
	t       *testing.T
	idx     int
	host    *netlab.Host // the lab host it runs on
	ctl     *http.Client // reaches the lab from the test process
	url     string       // ws://LABIP:PORT/v1/ws
	httpURL string
	cfg     childConfig
	dir     string

	mu       sync.Mutex
	cmd      *exec.Cmd
	stdin    interface{ Close() error }
	debug    string // the debug endpoint's host:port
	expected bool   // the running process is being killed or stopped
	exited   chan struct{}
	// unexpected are exits nobody asked for; peakRSS the largest VmHWM
	// of this slot's processes; starts counts them.
	unexpected []string
	peakRSS    int64
	starts     int
}

// start runs the slot's process and waits for its debug address.
func (p *snProc) start() {
	t := p.t
	b, _ := json.Marshal(p.cfg)
	// ip netns exec execs the program: cmd.Process is the supernode's.
	cmd := p.host.Command(context.Background(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b), "GOMEMLIMIT="+strconv.Itoa(memLimit))
	if *soakProfiles != "" {
		cmd.Env = append(cmd.Env, "PARLEY_SOAK_PROFILE=1")
	}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	logf, err := os.OpenFile(filepath.Join(p.dir, fmt.Sprintf("supernode%d.log", p.idx)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("supernode %d did not start: %v (log in %s)", p.idx, err, logf.Name())
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.stdin, p.debug, p.expected, p.exited = cmd, stdin, strings.TrimSpace(addr), false, exited
	p.starts++
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		if !p.expected {
			p.unexpected = append(p.unexpected, fmt.Sprintf("supernode %d (pid %d) exited by itself: %v", p.idx, cmd.Process.Pid, err))
		}
		if p.cmd == cmd {
			p.cmd = nil
		}
		p.mu.Unlock()
		close(exited)
	}()
}

// sample reads the running process's VmHWM into peakRSS.
func (p *snProc) sample() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	if hwm, err := vmHWM(p.cmd.Process.Pid); err == nil && hwm > p.peakRSS {
		p.peakRSS = hwm
	}
}

// kill SIGKILLs the running process (a supernode dying with its machine).
func (p *snProc) kill() {
	p.sample()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.expected = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// stop ends the process gracefully (stdin closes).
func (p *snProc) stop() {
	p.sample()
	p.mu.Lock()
	cmd, exited, stdin := p.cmd, p.exited, p.stdin
	p.expected = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	stdin.Close()
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

func (p *snProc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// stats asks the child for its heap and goroutines after GC.
func (p *snProc) stats(ctx context.Context) (childStats, error) {
	p.mu.Lock()
	addr := p.debug
	p.mu.Unlock()
	var st childStats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/soak/stats", nil)
	resp, err := p.ctl.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// health is the supernode's /healthz.
func (p *snProc) health(ctx context.Context) (supernode.Health, error) {
	var h supernode.Health
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.httpURL+"/healthz", nil)
	resp, err := p.ctl.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// vmHWM is a process's peak resident memory (bytes), from /proc.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}
