// Package loadgen is a load client that speaks Parley's real protocols: it
// registers and logs users in at a login server (wire/loginapi), attaches
// each over its own websocket to a supernode (wire/snapi: challenge, signed
// attach), sets presence with a watch list, sends messages to other users
// through the supernodes and answers each with a receipt, lets users leave
// and come back (churn), reattaches them when their supernode dies (jittered
// backoff, honouring a busy supernode's Retry-After), and places calls to
// the echo user through the client library (client.Session: WebRTC, Opus).
//
// It keeps a ledger of every message, so that at the end it can say whether
// anything was lost or delivered twice, and finds every online user through
// the mesh (Check). `parley load` runs it for operators sizing a supernode;
// the soak test (internal/soak) runs it against supernodes it kills.
//
// Messages are load payloads ({"load":1,"kind":"msg"|"receipt",...}), not
// sealed IM envelopes: a supernode routes payloads it cannot read, so the
// supernode's work is the same; the client's sealing is not measured.
package loadgen

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

// Config says what load to make. LoginURL is required; every other zero
// value is the documented default.
type Config struct {
	// LoginURL is the login server's base URL.
	LoginURL string
	// Supernodes are the websocket URLs to attach to; nil = the login
	// server's list, read every 10 s.
	Supernodes []string
	// Users is the number of simulated users, each with its own websocket.
	// Default 100.
	Users int
	// Prefix names the users: Prefix0000, Prefix0001, ... Default "load".
	Prefix string
	// Password is every simulated user's password (registered if the user
	// does not exist). Default "load-password-" + Prefix.
	Password string
	// LoginConcurrency bounds registrations and logins in flight at start.
	// Default 8.
	LoginConcurrency int
	// AttachConcurrency bounds the first attaches in flight at start (a
	// ramp, not a storm). Default 32.
	AttachConcurrency int
	// MessageEvery is the mean time between one user's messages
	// (exponentially distributed). Default 30 s; negative = no messages.
	MessageEvery time.Duration
	// ResendAfter is how long a message waits for its receipt before it is
	// sent again (same id, the next try). Default 5 s.
	ResendAfter time.Duration
	// Contacts is how many other users each user watches (presence).
	// Default 5.
	Contacts int
	// MeanOnline and MeanOffline, when MeanOnline > 0, make users leave and
	// come back: each stays attached an exponentially distributed time of
	// mean MeanOnline, then detaches for one of mean MeanOffline (default
	// 10 s). Default 0: users stay.
	MeanOnline  time.Duration
	MeanOffline time.Duration
	// Calls is how many calls to EchoUser are up at once (each from a
	// client.Session of its own, placed again when it ends). Default 0.
	Calls int
	// EchoUser is the user the calls go to. Default "echo".
	EchoUser string
	// CallLength is how long each call lasts. Default 10 s.
	CallLength time.Duration
	// Home is a directory for the calling users' homes; required when
	// Calls > 0.
	Home string
	// Logger receives the load's logs; nil discards them.
	Logger *slog.Logger
}

func (cfg Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if cfg.Users <= 0 {
		cfg.Users = 100
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "load"
	}
	if cfg.Password == "" {
		cfg.Password = "load-password-" + cfg.Prefix
	}
	if cfg.LoginConcurrency <= 0 {
		cfg.LoginConcurrency = 8
	}
	if cfg.AttachConcurrency <= 0 {
		cfg.AttachConcurrency = 32
	}
	def(&cfg.MessageEvery, 30*time.Second)
	def(&cfg.ResendAfter, 5*time.Second)
	def(&cfg.MeanOffline, 10*time.Second)
	def(&cfg.CallLength, 10*time.Second)
	if cfg.Contacts == 0 {
		cfg.Contacts = 5
	}
	cfg.Contacts = min(max(cfg.Contacts, 0), cfg.Users-1)
	if cfg.EchoUser == "" {
		cfg.EchoUser = "echo"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return cfg
}

// Load is a running load. Its goroutines end at Close.
type Load struct {
	cfg    Config
	log    *slog.Logger
	login  *loginapi.Client
	users  []*vuser
	ledger *ledger
	st     counters
	calls  *callers // nil without calls

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// quiet stops new messages and churn (Quiesce).
	quiet     atomic.Bool
	quietCh   chan struct{}
	quietOnce sync.Once

	mu       sync.Mutex
	snURLs   []string
	reattach []Reattach
}

// Start registers and logs in the users, attaches them (AttachConcurrency
// at a time) and starts the load. It returns once every user has attached
// once, or with the first error that stops a user from logging in.
func Start(ctx context.Context, cfg Config) (*Load, error) {
	if cfg.LoginURL == "" {
		return nil, fmt.Errorf("loadgen: start: %w", ErrNoLoginURL)
	}
	cfg = cfg.withDefaults()
	if cfg.Calls > 0 && cfg.Home == "" {
		return nil, fmt.Errorf("loadgen: start: %w", ErrNoHome)
	}
	l := &Load{cfg: cfg, log: cfg.Logger, login: loginapi.NewClient(cfg.LoginURL, nil), ledger: newLedger(),
		quietCh: make(chan struct{}), snURLs: slices.Clone(cfg.Supernodes)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	if len(l.snURLs) == 0 {
		if err := l.refreshSupernodes(ctx); err != nil {
			l.cancel()
			return nil, err
		}
		l.wg.Go(l.listLoop)
	}
	for i := range cfg.Users {
		l.users = append(l.users, &vuser{l: l, idx: i, name: fmt.Sprintf("%s%04d", cfg.Prefix, i),
			receipts: make(chan receipt, 256), pending: map[string]*pendingMsg{}, excluded: map[string]time.Time{},
			rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))})
	}
	if err := l.logIn(ctx); err != nil {
		l.Close()
		return nil, err
	}
	// The first attaches: a ramp of AttachConcurrency at a time.
	sem := make(chan struct{}, cfg.AttachConcurrency)
	attached := make(chan struct{}, len(l.users))
	for _, u := range l.users {
		for i := 0; i < cfg.Contacts; i++ {
			u.watch = append(u.watch, l.users[(u.idx+1+i*7)%len(l.users)].name)
		}
		u.watch = slices.Compact(slices.Sorted(slices.Values(u.watch)))
		l.wg.Go(func() { u.run(sem, attached) })
	}
	for range l.users {
		select {
		case <-attached:
		case <-ctx.Done():
			l.Close()
			return nil, fmt.Errorf("loadgen: start: attaching: %w", ctx.Err())
		}
	}
	if cfg.Calls > 0 {
		c, err := startCallers(ctx, l)
		if err != nil {
			l.Close()
			return nil, err
		}
		l.calls = c
	}
	return l, nil
}

// logIn registers (when missing) and logs in every user, LoginConcurrency
// at a time.
func (l *Load) logIn(ctx context.Context) error {
	sem := make(chan struct{}, l.cfg.LoginConcurrency)
	errs := make(chan error, len(l.users))
	var wg sync.WaitGroup
	for _, u := range l.users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs <- u.logIn(ctx)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *Load) refreshSupernodes(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := l.login.Supernodes(ctx)
	if err != nil {
		return fmt.Errorf("loadgen: supernode list: %w", err)
	}
	var urls []string
	for _, sn := range list {
		urls = append(urls, sn.Addr)
	}
	if len(urls) == 0 {
		return fmt.Errorf("loadgen: supernode list: %w", ErrNoSupernodes)
	}
	l.mu.Lock()
	l.snURLs = urls
	l.mu.Unlock()
	return nil
}

func (l *Load) listLoop() {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
			if err := l.refreshSupernodes(l.ctx); err != nil {
				l.log.Warn("reading the supernode list", "err", err)
			}
		}
	}
}

func (l *Load) supernodes() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.snURLs)
}

// Quiesce stops new messages and churn: every user comes back online and
// stays. Messages still waiting for their receipt keep being resent. It
// returns when none is waiting any more, or ctx ends.
func (l *Load) Quiesce(ctx context.Context) error {
	l.quietOnce.Do(func() {
		l.quiet.Store(true)
		close(l.quietCh)
	})
	if l.calls != nil {
		l.calls.stop()
	}
	for {
		waiting, online := 0, 0
		for _, u := range l.users {
			waiting += u.waiting()
			if u.online() {
				online++
			}
		}
		if waiting == 0 && online == len(l.users) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("loadgen: quiesce: %d messages without receipt, %d of %d users online: %w", waiting, online, len(l.users), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Close stops every user (detaching them) and the calls, and waits for
// their goroutines.
func (l *Load) Close() {
	if l.calls != nil {
		l.calls.close()
	}
	l.cancel()
	l.wg.Wait()
}

// Users are the names of the simulated users.
func (l *Load) Users() []string {
	out := make([]string, len(l.users))
	for i, u := range l.users {
		out[i] = u.name
	}
	return out
}

// Online counts the users attached now.
func (l *Load) Online() int {
	n := 0
	for _, u := range l.users {
		if u.online() {
			n++
		}
	}
	return n
}

// OnlineAt counts the users attached now to each supernode URL.
func (l *Load) OnlineAt() map[string]int {
	out := map[string]int{}
	for _, u := range l.users {
		if url := u.supernode(); url != "" {
			out[url]++
		}
	}
	return out
}

// keyPair is a user's device key.
func keyPair() (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	return pub, priv
}
