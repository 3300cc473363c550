package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley/parley/internal/cluster"
	"github.com/parley/parley/supernode"
)

// childEnv carries a supernode child's configuration (JSON): the test
// binary started with it runs one supernode, as `parley supernode` does
// (cluster.RunSupernode), and a debug endpoint for the soak on its lab
// address (the test binary only: parley supernode has none).
const childEnv = "PARLEY_SOAK_SUPERNODE"

// childConfig is what a supernode child runs.
type childConfig struct {
	LoginURL string `json:"login_url"`
	// Listen is the supernode's lab address (host:port); its relay listens
	// on port 3478 of the same host, its debug endpoint on DebugListen.
	Listen          string         `json:"listen"`
	DebugListen     string         `json:"debug_listen"`
	AllowPeers      []netip.Prefix `json:"allow_peers"`
	NodeKeyFile     string         `json:"node_key_file"`
	Seeds           []string       `json:"seeds"`
	AttachRate      float64        `json:"attach_rate"`
	MaxAttaching    int            `json:"max_attaching"`
	RetryAfter      time.Duration  `json:"retry_after"`
	RecordTTL       time.Duration  `json:"record_ttl"`
	RefreshInterval time.Duration  `json:"refresh_interval"`
}

// childStats is what a child's debug endpoint answers, after two GCs.
type childStats struct {
	HeapAlloc  uint64 `json:"heap_alloc"`
	HeapInuse  uint64 `json:"heap_inuse"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
	// Own leaves out the goroutines of HTTP keep-alive connections (mesh
	// requests between supernodes, whose number follows the traffic of the
	// last seconds, not anything held).
	Own int `json:"own_goroutines"`
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	if cfg := os.Getenv(loadEnv); cfg != "" {
		os.Exit(runLoadChild(cfg))
	}
	if cfg := os.Getenv(echoEnv); cfg != "" {
		os.Exit(runEchoChild(cfg))
	}
	os.Exit(m.Run())
}

// runChild runs a supernode until SIGTERM or stdin closes. It prints the
// debug endpoint's address on stdout once the supernode's listener is bound.
func runChild(raw string) int {
	if os.Getenv("PARLEY_SOAK_PROFILE") != "" {
		runtime.MemProfileRate = 4096
	}
	var cc childConfig
	if err := json.Unmarshal([]byte(raw), &cc); err != nil {
		fmt.Fprintln(os.Stderr, "soak child:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ln, err := net.Listen("tcp", cc.Listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak child:", err)
		return 2
	}
	dln, err := net.Listen("tcp", cc.DebugListen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak child:", err)
		return 2
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute, ResponseHeaderTimeout: 5 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("/soak/stats", func(w http.ResponseWriter, r *http.Request) {
		tr.CloseIdleConnections()
		time.Sleep(200 * time.Millisecond)
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		json.NewEncoder(w).Encode(childStats{HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, Sys: ms.Sys,
			Goroutines: runtime.NumGoroutine(), Own: ownGoroutines()})
	})
	mux.HandleFunc("/soak/heap", func(w http.ResponseWriter, r *http.Request) {
		// A heap profile is as of the last GC but one: two GCs make it now's.
		runtime.GC()
		runtime.GC()
		pprof.Lookup("heap").WriteTo(w, 0)
	})
	go http.Serve(dln, mux)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		bufio.NewReader(os.Stdin).ReadByte() // EOF when the parent goes
		stop()
	}()
	fmt.Println(dln.Addr().String())
	host, _, _ := net.SplitHostPort(cc.Listen)
	err = cluster.RunSupernode(ctx, cluster.SupernodeConfig{LoginURL: cc.LoginURL, Listener: ln, NodeKeyFile: cc.NodeKeyFile,
		Seeds: cc.Seeds, Logger: log, PublicAddr: host,
		Relay: cluster.RelayConfig{UDP: net.JoinHostPort(host, "3478"), TCP: net.JoinHostPort(host, "3478"), AllowPeers: cc.AllowPeers},
		Limits: supernode.Config{MaxSessionsPerAddr: -1, MaxConnsPerAddr: -1, // a load host's 1,000 users come from one address
			AttachRate: cc.AttachRate, MaxAttaching: cc.MaxAttaching, RetryAfter: cc.RetryAfter,
			RecordTTL: cc.RecordTTL, RefreshInterval: cc.RefreshInterval,
			MeshClient: &http.Client{Timeout: 5 * time.Second, Transport: tr}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak child:", err)
		return 1
	}
	return 0
}

// ownGoroutines counts the goroutines that are not an HTTP keep-alive
// connection's (client or server side).
func ownGoroutines() int {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 1)
	n := 0
	for _, block := range strings.Split(b.String(), "\n\n") {
		head, _, _ := strings.Cut(block, "\n")
		if !strings.Contains(head, " @ ") {
			continue
		}
		count, err := strconv.Atoi(strings.Fields(head)[0])
		if err != nil {
			continue
		}
		if strings.Contains(block, "net/http.(*persistConn)") || strings.Contains(block, "net/http.(*conn).serve") ||
			strings.Contains(block, "net/http.(*connReader).backgroundRead") {
			continue
		}
		n += count
	}
	return n
}
