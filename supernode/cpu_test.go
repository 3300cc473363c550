package supernode_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// childCPUEnv tells the child supernode process not to force garbage
// collections (the memory benchmark does, to read live memory).
const childCPUEnv = "PARLEY_SUPERNODE_BENCH_CPU"

// cpuSeconds is the CPU time (user and system) process pid has used, from
// /proc/PID/stat (clock ticks of 1/100 s).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: the fields start after its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100, nil
}

// BenchmarkSupernodeCPUPerClient runs a supernode in its own process with
// 2,000 clients attached over real websockets from this one, and reports the
// supernode process's CPU time: per attached idle client per hour (pings
// every 15 s, records refreshed every 10 s), per presence frame (what every
// client sends once a minute), and per send carried from one client to
// another (a message, a call signal).
//
//	go test -run '^$' -bench SupernodeCPUPerClient -benchtime 1x ./supernode/
func BenchmarkSupernodeCPUPerClient(b *testing.B) {
	const clients, idle = 2000, 30 * time.Second
	if _, err := cpuSeconds(os.Getpid()); err != nil {
		b.Skip("needs /proc to read the supernode's CPU time: ", err)
	}
	for i := 0; i < b.N; i++ {
		f := &meshFixture{}
		f.loginPub, f.loginPriv, _ = ed25519.GenerateKey(nil)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+base64.StdEncoding.EncodeToString(f.loginPub), childCPUEnv+"=1")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		addr, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		nd := &meshNode{url: "ws://" + strings.TrimSpace(addr) + "/v1/ws"}
		users := make([]*meshUser, clients)
		for j := range users {
			users[j] = f.attach(b, fmt.Sprintf("idle%04d", j), nd)
		}
		time.Sleep(2 * time.Second)
		measure := func(f func()) float64 {
			c0, _ := cpuSeconds(cmd.Process.Pid)
			f()
			c1, _ := cpuSeconds(cmd.Process.Pid)
			return c1 - c0
		}
		idleCPU := measure(func() { time.Sleep(idle) })
		presenceCPU := measure(func() {
			for _, u := range users {
				u.conn.SetPresence("online", "d1", []string{"idle0000", "idle0001"})
			}
			time.Sleep(2 * time.Second)
		}) - idleCPU*2/idle.Seconds()
		const sends = 2000
		sendCPU := measure(func() {
			var wg sync.WaitGroup
			for j := range 20 {
				wg.Go(func() {
					for k := range sends / 20 {
						u := users[(j*100+k)%clients]
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						u.conn.Send(ctx, users[(j*100+k+1)%clients].name, json.RawMessage(`{"kind":"bench","pad":"`+strings.Repeat("x", 400)+`"}`))
						cancel()
					}
				})
			}
			wg.Wait()
		})
		b.ReportMetric(idleCPU/idle.Seconds()*3600/clients*1000, "ms-CPU/client-hour")
		b.ReportMetric(presenceCPU/clients*1e6, "µs-CPU/presence")
		b.ReportMetric(sendCPU/sends*1e6, "µs-CPU/send")
		stdin.Close()
		cmd.Wait()
	}
}
