// Package echo is the sound-test user: a client that stays online, answers
// every call from anyone (several at once) and plays back what it hears. It
// is `parley echo` and the echo user of `parley up`.
//
// [Run] logs in with what the home holds, registering the user first when the
// account does not exist; it keeps one session online until its context ends.
// A session moves to another supernode by itself when its own goes away (see
// package client); only a session that cannot (say, its credential can no
// longer be renewed) is started afresh.
package echo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/internal/backoff"

	"github.com/parley/parley/wire/loginapi"
)

// Config configures [Run]. The zero value needs only Home and LoginURL to be
// useful; every other zero field is the documented default.
type Config struct {
	// Home is the echo user's home directory (device key, credential,
	// refresh token), as client.Config.Home.
	Home string
	// LoginURL is the login server; "" = the one the home last used.
	LoginURL string
	// User is the echo user's name. Default "echo".
	User string
	// Password registers the user when the account does not exist, and logs
	// in when the home has no credential. "" = a random password nobody
	// needs to know: the refresh token in the home keeps the user logged in.
	Password string
	// Prefer is the supernode to try first ("" = the measured choice), as
	// client.SessionConfig.Prefer.
	Prefer string
	// OnEvent receives the sessions' events (online, calls, stats…); nil
	// drops them. It must not block for long.
	OnEvent func(client.Event)
	// Promote, when set, starts self-promotion on each new session (for
	// example with client/promote.Start; this package links no server
	// code); an error is logged. Nil = never.
	Promote func(*client.Session) error
	// Logger receives the echo's and its client's logs; nil discards them.
	Logger *slog.Logger
	// RetryDelay is about how long to wait (with jitter, growing up to a
	// minute while it keeps failing) before starting a session again after
	// one could not start or ended. Default 1 s.
	RetryDelay time.Duration
}

func (cfg Config) withDefaults() Config {
	if cfg.User == "" {
		cfg.User = "echo"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(client.Event) {}
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	return cfg
}

// Run keeps the echo user online until ctx ends, then returns nil. It returns
// an error only when it cannot log in or register the user at the start.
// Every goroutine it starts (the sessions', the calls') ends before it returns
// or, for calls being torn down, with their session.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	pw := cfg.Password
	c, err := client.New(client.Config{
		Home: cfg.Home, LoginURL: cfg.LoginURL, User: cfg.User,
		Password: func() (string, error) { return pw, nil },
		Logger:   cfg.Logger,
	})
	if err != nil {
		return err
	}
	if err := logIn(ctx, c, cfg.User, &pw); err != nil {
		return err
	}
	// Restarts back off with jitter from RetryDelay to a minute; a session
	// that held for a minute starts the count again.
	retry := backoff.Policy{Floor: cfg.RetryDelay / 2, Base: cfg.RetryDelay, Cap: time.Minute}
	failures := 0
	for {
		started := time.Now()
		s, err := c.Online(ctx, client.SessionConfig{
			Prefer:     cfg.Prefer,
			OnEvent:    cfg.OnEvent,
			OnIncoming: func(in *client.Incoming) { answer(ctx, in, cfg.Logger) },
		})
		if err == nil && cfg.Promote != nil {
			if perr := cfg.Promote(s); perr != nil {
				cfg.Logger.Warn("echo: cannot promote to supernode", "err", perr)
			}
		}
		if err == nil {
			select {
			case <-ctx.Done():
				s.Close()
				return nil
			case <-s.Done():
				cfg.Logger.Warn("echo: the session ended; starting again", "err", s.Err())
				s.Close()
			}
		} else if ctx.Err() == nil {
			cfg.Logger.Warn("echo: not online yet; retrying", "err", err)
		}
		if time.Since(started) > time.Minute {
			failures = 0
		}
		t := time.NewTimer(retry.Delay(failures))
		failures++
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// logIn logs in with what the home has; failing that, it registers the user
// (with *pw, or a random password it stores in *pw) and logs in.
func logIn(ctx context.Context, c *client.Client, user string, pw *string) error {
	_, err := c.Credential(ctx)
	if err == nil {
		return nil
	}
	// The login server does not say whether a name exists: a wrong
	// password may be a missing account. Registering tells.
	if !errors.Is(err, loginapi.ErrUnknownUser) && !errors.Is(err, loginapi.ErrWrongPassword) && !errors.Is(err, client.ErrNeedPassword) {
		return err
	}
	if *pw == "" {
		b := make([]byte, 18)
		rand.Read(b)
		*pw = hex.EncodeToString(b)
	}
	if rerr := c.Register(ctx, user, *pw); errors.Is(rerr, loginapi.ErrUserExists) {
		return fmt.Errorf("echo user %q %w: %w", user, ErrNotYours, err)
	} else if rerr != nil {
		return rerr
	}
	return c.Login(ctx, user, *pw)
}

// answer answers a call with a [client.Echo]: what it hears it says back. The
// call runs on its own (owned by its session) until either side hangs up.
func answer(ctx context.Context, in *client.Incoming, log *slog.Logger) {
	e := client.NewEcho()
	if _, err := in.Answer(ctx, client.Media{Source: e, Sink: e}); err != nil {
		log.Warn("echo: answering failed", "peer", in.Peer, "err", err)
	}
}
