package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/echo"
	"github.com/parley/parley/internal/loadgen"
	"github.com/parley/parley/internal/netlab"
)

// The load clients and the echo user are processes of their own too, on
// lab hosts of their own (the test binary re-executed with `ip netns exec`),
// so that every websocket, every reconnect storm and every call crosses the
// lab's network. A load child runs loadgen.Start with the configuration in
// loadEnv and then answers commands, one JSON line each way, on its stdin
// and stdout until stdin closes (then it detaches everyone and exits).
const (
	loadEnv = "PARLEY_SOAK_LOAD"
	echoEnv = "PARLEY_SOAK_ECHO"
)

// loadCmd is a command to a load child.
type loadCmd struct {
	Op      string        `json:"op"` // stats, online_at, reattaches, quiesce, check
	Since   time.Time     `json:"since,omitzero"`
	Timeout time.Duration `json:"timeout,omitempty"`
}

// loadAnswer is a load child's answer (the first line: to Start).
type loadAnswer struct {
	Err        string             `json:"err,omitempty"`
	Online     int                `json:"online"`
	OnlineAt   map[string]int     `json:"online_at,omitempty"`
	Stats      *loadgen.Stats     `json:"stats,omitempty"`
	Reattaches []loadgen.Reattach `json:"reattaches,omitempty"`
	Unfindable []string           `json:"unfindable,omitempty"`
}

// runLoadChild is a load child's side.
func runLoadChild(raw string) int {
	var cfg loadgen.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "soak load child:", err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	enc := json.NewEncoder(os.Stdout)
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	l, err := loadgen.Start(sctx, cfg)
	cancel()
	if err != nil {
		enc.Encode(loadAnswer{Err: err.Error()})
		return 1
	}
	defer l.Close()
	enc.Encode(loadAnswer{Online: l.Online()})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var c loadCmd
		var a loadAnswer
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			a.Err = err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(c.Timeout, time.Minute))
		switch c.Op {
		case "stats":
			st := l.Stats()
			a.Stats = &st
		case "online_at":
			a.OnlineAt = l.OnlineAt()
		case "reattaches":
			a.Reattaches = l.Reattaches(c.Since)
		case "quiesce":
			if err := l.Quiesce(ctx); err != nil {
				a.Err = err.Error()
			}
		case "check":
			var err error
			if a.Unfindable, err = l.Check(ctx); err != nil {
				a.Err = err.Error()
			}
		default:
			a.Err = "unknown op " + c.Op
		}
		cancel()
		a.Online = l.Online()
		enc.Encode(a)
	}
	return 0
}

// echoChild is what an echo child runs.
type echoChild struct {
	Home     string `json:"home"`
	LoginURL string `json:"login_url"`
}

// runEchoChild runs the echo user until stdin closes; it prints "online"
// when it first is.
func runEchoChild(raw string) int {
	var cfg echoChild
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "soak echo child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		io.Copy(io.Discard, os.Stdin) // EOF when the parent goes
		stop()
	}()
	var once sync.Once
	echo.Run(ctx, echo.Config{Home: cfg.Home, LoginURL: cfg.LoginURL, OnEvent: func(ev client.Event) {
		if ev.Event == "online" {
			once.Do(func() { fmt.Println("online") })
		}
	}})
	return 0
}

// child is a process of the test binary on a lab host, talked to over its
// stdin and stdout.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	exited chan error

	mu sync.Mutex // one command at a time
}

// startChild runs the test binary on host h with env set, its stderr in
// dir/name.log.
func startChild(h *netlab.Host, dir, name string, env ...string) (*child, error) {
	cmd := h.Command(context.Background(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<20), exited: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		logf.Close()
		c.exited <- err
	}()
	return c, nil
}

// stop closes the child's stdin and waits (up to a minute) for it to exit.
func (c *child) stop() error {
	c.stdin.Close()
	select {
	case err := <-c.exited:
		c.exited <- err
		return err
	case <-time.After(time.Minute):
		c.cmd.Process.Kill()
		return fmt.Errorf("%s did not exit within a minute of its stdin closing", c.name)
	}
}

// loadProc is the parent's handle on a load child: the methods the soak
// used to call on an in-process *loadgen.Load.
type loadProc struct{ *child }

// startLoad starts a load child with cfg on h and waits until every one of
// its users attached once.
func startLoad(h *netlab.Host, dir, name string, cfg loadgen.Config) (*loadProc, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	c, err := startChild(h, dir, name, loadEnv+"="+string(b))
	if err != nil {
		return nil, err
	}
	lp := &loadProc{c}
	var a loadAnswer
	if err := lp.read(&a); err != nil {
		c.cmd.Process.Kill()
		return nil, fmt.Errorf("load %s: start: %w (log in %s)", name, err, filepath.Join(dir, name+".log"))
	}
	if a.Err != "" {
		c.stop()
		return nil, fmt.Errorf("load %s: start: %s", name, a.Err)
	}
	return lp, nil
}

func (lp *loadProc) read(a *loadAnswer) error {
	line, err := lp.out.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, a)
}

// do sends one command and reads its answer.
func (lp *loadProc) do(c loadCmd) (loadAnswer, error) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	var a loadAnswer
	b, _ := json.Marshal(c)
	if _, err := lp.stdin.Write(append(b, '\n')); err != nil {
		return a, fmt.Errorf("load %s: %s: %w", lp.name, c.Op, err)
	}
	if err := lp.read(&a); err != nil {
		return a, fmt.Errorf("load %s: %s: %w", lp.name, c.Op, err)
	}
	if a.Err != "" {
		return a, fmt.Errorf("load %s: %s: %s", lp.name, c.Op, a.Err)
	}
	return a, nil
}

// loads are the soak's load children, seen as one load.
type loads []*loadProc

func (ls loads) each(c loadCmd) ([]loadAnswer, error) {
	out := make([]loadAnswer, len(ls))
	errs := make([]error, len(ls))
	var wg sync.WaitGroup
	for i, lp := range ls {
		wg.Go(func() { out[i], errs[i] = lp.do(c) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Online counts the users attached now (-1 when a child did not answer).
func (ls loads) Online() int {
	as, err := ls.each(loadCmd{Op: "online_at"})
	if err != nil {
		return -1
	}
	n := 0
	for _, a := range as {
		n += a.Online
	}
	return n
}

// OnlineAt counts the users attached now to each supernode URL.
func (ls loads) OnlineAt() map[string]int {
	as, _ := ls.each(loadCmd{Op: "online_at"})
	out := map[string]int{}
	for _, a := range as {
		for u, n := range a.OnlineAt {
			out[u] += n
		}
	}
	return out
}

// Reattaches are the reattaches of users whose connection dropped at or
// after since, in every child.
func (ls loads) Reattaches(since time.Time) []loadgen.Reattach {
	as, _ := ls.each(loadCmd{Op: "reattaches", Since: since})
	var out []loadgen.Reattach
	for _, a := range as {
		out = append(out, a.Reattaches...)
	}
	return out
}

// Drops counts the connections that dropped (their supernode died), in
// every child: Stats without the reattach times.
func (ls loads) Drops() int64 {
	as, _ := ls.each(loadCmd{Op: "stats"})
	var n int64
	for _, a := range as {
		if a.Stats != nil {
			n += a.Stats.Drops
		}
	}
	return n
}

// Stats adds up the children's counts (the reattach percentiles over all
// of them).
func (ls loads) Stats() loadgen.Stats {
	as, _ := ls.each(loadCmd{Op: "stats"})
	var st loadgen.Stats
	for _, a := range as {
		if a.Stats == nil {
			continue
		}
		s := *a.Stats
		st.Users += s.Users
		st.Online += s.Online
		st.Attaches += s.Attaches
		st.Busy += s.Busy
		st.DialFailures += s.DialFailures
		st.Drops += s.Drops
		st.Leaves += s.Leaves
		st.Messages += s.Messages
		st.Sends += s.Sends
		st.Acked += s.Acked
		st.Resends += s.Resends
		st.Delivered += s.Delivered
		st.Receipts += s.Receipts
		st.Lost += s.Lost
		st.LostIDs = append(st.LostIDs, s.LostIDs...)
		st.Duplicates += s.Duplicates
		st.Misrouted += s.Misrouted
		st.Redelivered += s.Redelivered
		st.Presence += s.Presence
		st.CallsPlaced += s.CallsPlaced
		st.CallsConnected += s.CallsConnected
		st.CallsFailed += s.CallsFailed
		st.CallsMaxUp += s.CallsMaxUp
	}
	rs := ls.Reattaches(time.Time{})
	st.Reattaches = len(rs)
	st.ReattachP50, st.ReattachP99, st.ReattachMax = loadgen.Percentiles(rs)
	return st
}

// Quiesce has every child stop new messages and churn and wait for every
// receipt.
func (ls loads) Quiesce(timeout time.Duration) error {
	_, err := ls.each(loadCmd{Op: "quiesce", Timeout: timeout})
	return err
}

// Check looks every online user up through another user's supernode (each
// child its own users).
func (ls loads) Check(timeout time.Duration) ([]string, error) {
	as, err := ls.each(loadCmd{Op: "check", Timeout: timeout})
	var out []string
	for _, a := range as {
		out = append(out, a.Unfindable...)
	}
	return out, err
}

// Close detaches every user and ends the children.
func (ls loads) Close() error {
	var errs []error
	for _, lp := range ls {
		if err := lp.stop(); err != nil {
			errs = append(errs, fmt.Errorf("load %s: %w", lp.name, err))
		}
	}
	return errors.Join(errs...)
}
