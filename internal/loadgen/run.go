package loadgen

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
)

// Flags are `parley load`'s flags; Config turns them into a Config.
type Flags struct {
	cfg      Config
	targets  targetList
	Duration time.Duration
	JSON     bool
}

type targetList []string

func (t *targetList) String() string { return strings.Join(*t, ",") }
func (t *targetList) Set(s string) error {
	if !strings.HasPrefix(s, "ws://") && !strings.HasPrefix(s, "wss://") {
		return fmt.Errorf("not a ws:// or wss:// URL: %q", s)
	}
	*t = append(*t, s)
	return nil
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.IntVar(&f.cfg.Users, "users", 100, "simulated users, one websocket each")
	fs.StringVar(&f.cfg.Prefix, "prefix", "load", "user names are `PREFIX`0000, PREFIX0001, ... (registered when missing)")
	fs.DurationVar(&f.cfg.MessageEvery, "message-every", 30*time.Second, "mean time between one user's messages (negative: none)")
	fs.IntVar(&f.cfg.Contacts, "contacts", 5, "users each user watches (presence)")
	fs.DurationVar(&f.cfg.MeanOnline, "mean-online", 0, "churn: mean time a user stays attached before leaving (0: users stay)")
	fs.DurationVar(&f.cfg.MeanOffline, "mean-offline", 10*time.Second, "churn: mean time a user stays away")
	fs.IntVar(&f.cfg.Calls, "calls", 0, "calls to the echo user up at once (each from a user of the client library)")
	fs.StringVar(&f.cfg.EchoUser, "echo-user", "echo", "the `USER` calls go to")
	fs.DurationVar(&f.cfg.CallLength, "call-length", 10*time.Second, "how long each call lasts")
	fs.Var(&f.targets, "target", "attach to supernode `URL` (repeatable; default: the login server's list)")
	fs.DurationVar(&f.Duration, "duration", time.Minute, "how long to run before the final check")
	fs.BoolVar(&f.JSON, "json", false, "print progress and the result as JSON lines")
}

// Config is the Config the flags say, with the caller's login server,
// password ("": the default), home (the calling users' homes go in its
// subdirectory "load"; "": the current directory) and logger.
func (f *Flags) Config(loginURL, password, home string, log *slog.Logger) Config {
	cfg := f.cfg
	cfg.Supernodes = f.targets
	cfg.LoginURL, cfg.Password, cfg.Home, cfg.Logger = loginURL, password, filepath.Join(cmp.Or(home, "."), "load"), log
	return cfg
}

// Result is what Run prints at the end.
type Result struct {
	Stats
	// Unfindable are online users the directory did not find.
	Unfindable []string `json:"unfindable"`
	OK         bool     `json:"ok"`
}

// Run runs the load for d (or until ctx ends), printing a progress line
// every 10 s, then stops new messages and churn, waits up to a minute for
// every receipt, looks every user up and prints the result. An error wraps
// ErrLost when anything was lost, delivered twice or not found.
func Run(ctx context.Context, cfg Config, d time.Duration, w io.Writer, jsonOut bool) error {
	start := time.Now()
	l, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer l.Close()
	print := func(v any, text string) {
		if jsonOut {
			b, _ := json.Marshal(v)
			fmt.Fprintf(w, "%s\n", b)
		} else {
			fmt.Fprintln(w, text)
		}
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	end := time.NewTimer(d)
	defer end.Stop()
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-end.C:
			running = false
		case <-tick.C:
			st := l.Stats()
			print(st, fmt.Sprintf("%4.0fs online %d/%d, messages %d delivered %d, calls %d/%d, busy refusals %d, drops %d",
				time.Since(start).Seconds(), st.Online, st.Users, st.Messages, st.Delivered, st.CallsConnected, st.CallsPlaced, st.Busy, st.Drops))
		}
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	qerr := l.Quiesce(qctx)
	missing, _ := l.Check(qctx)
	r := Result{Stats: l.Stats(), Unfindable: missing}
	r.OK = qerr == nil && r.Lost == 0 && r.Duplicates == 0 && r.Misrouted == 0 && len(missing) == 0
	print(r, fmt.Sprintf("users %d, attaches %d, messages %d, delivered %d, lost %d, duplicates %d, misrouted %d, resends %d, "+
		"calls %d connected of %d, busy refusals %d, drops %d, reattach p99 %v max %v, unfindable %d",
		r.Users, r.Attaches, r.Messages, r.Delivered, r.Lost, r.Duplicates, r.Misrouted, r.Resends,
		r.CallsConnected, r.CallsPlaced, r.Busy, r.Drops, r.ReattachP99, r.ReattachMax, len(missing)))
	if !r.OK {
		return fmt.Errorf("loadgen: %w: lost %d, duplicates %d, misrouted %d, unfindable %d (%v)", ErrLost, r.Lost, r.Duplicates, r.Misrouted, len(missing), qerr)
	}
	return nil
}
