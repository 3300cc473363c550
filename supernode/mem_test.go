package supernode_test

import (
	"bufio"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/procstat"
	"github.com/parley/parley/supernode"
)

// childEnv names the environment variable that turns this test binary into a
// bare supernode process (for measuring its memory from outside).
const childEnv = "PARLEY_SUPERNODE_BENCH_CHILD"

func TestMain(m *testing.M) {
	if key := os.Getenv(childEnv); key != "" {
		os.Exit(runChild(key))
	}
	os.Exit(m.Run())
}

// runChild serves a supernode on loopback, prints its address, and exits when
// stdin closes.
func runChild(key string) int {
	pub, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 2
	}
	// All the clients come from loopback: no per-address cap.
	srv, err := supernode.New(supernode.Config{LoginKey: ed25519.PublicKey(pub), Name: ln.Addr().String(), MaxSessionsPerAddr: -1, AttachRate: -1})
	if err != nil {
		return 2
	}
	go http.Serve(ln, srv.Handler())
	if os.Getenv(childCPUEnv) == "" {
		go func() {
			for range time.Tick(500 * time.Millisecond) {
				debug.FreeOSMemory() // RSS then shows what is live, not garbage
			}
		}()
	}
	fmt.Println(ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	return 0
}

// BenchmarkSupernodeMemoryPerClient runs a supernode in its own process,
// attaches 2,000 idle clients over real websockets from this one, and reports
// the supernode process's resident memory per attached client.
//
//	go test -run '^$' -bench SupernodeMemoryPerClient -benchtime 1x ./supernode/
func BenchmarkSupernodeMemoryPerClient(b *testing.B) {
	const clients = 2000
	if _, err := procstat.RSS(os.Getpid()); err != nil {
		b.Skip("needs /proc to read the supernode's resident memory: ", err)
	}
	for i := 0; i < b.N; i++ {
		f := &meshFixture{}
		f.loginPub, f.loginPriv, _ = ed25519.GenerateKey(nil)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+base64.StdEncoding.EncodeToString(f.loginPub))
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
		time.Sleep(time.Second)
		before, err := procstat.RSS(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < clients; j++ {
			f.attach(b, fmt.Sprintf("idle%04d", j), nd)
		}
		time.Sleep(2 * time.Second)
		after, err := procstat.RSS(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(before)/1024, "base-MiB")
		b.ReportMetric(float64(after-before)/clients, "KiB/client")
		stdin.Close()
		cmd.Wait()
	}
}
