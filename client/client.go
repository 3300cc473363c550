// Package client is the library every Parley front end is built on: it keeps the
// device key and credential in a home directory, logs in and renews credentials,
// attaches to a supernode, and places and answers end-to-end encrypted calls
// (pion/webrtc, DTLS-SRTP, Opus) whose DTLS fingerprints are signed by each
// user's key. The CLI in cmd/parley is a thin layer over it.
//
// A typical use:
//
//	c, _ := client.New(client.Config{Home: dir, LoginURL: url})
//	c.Login(ctx, "alice", password)
//	s, _ := c.Online(ctx, client.SessionConfig{OnIncoming: func(in *client.Incoming) { in.Answer(media) }})
//	call, _ := s.Call(ctx, "bob", media)
//	<-call.Done()
//
// The signalling carried between clients through supernodes is documented in
// signal.go and docs/protocol.md.
package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
)

// Config configures a [Client]. Home is required; zero values mean the documented
// defaults.
type Config struct {
	// Home is the directory holding the device key and state (see home.go).
	Home string
	// LoginURL is the login server's base URL. Empty means the one the home last
	// used.
	LoginURL string
	// User names the user to log in as when the home has none yet.
	User string
	// Password, when set, is asked for a password whenever the client must log in
	// with one (the home has no valid credential and no valid refresh token).
	// Nil means such a login fails with ErrNeedPassword.
	Password func() (string, error)
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient talks to the login server; nil means a client with a 10 s
	// timeout. Its transport (TLS roots, dialer, proxy) also times the
	// supernodes' /healthz, on fresh connections.
	HTTPClient *http.Client
	// RenewBefore is how long before its expiry a credential is renewed.
	// Default: a third of its lifetime.
	RenewBefore time.Duration
}

// Client is one device of one user.
type Client struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	home  *home
	key   ed25519.PrivateKey
	hosts *hostCache // supernodes.json (hostcache.go)
	// health times supernodes (hostcache.go): Config.HTTPClient's transport
	// without keep-alives, so that each round trip includes the connect.
	health *http.Client

	// renewMu serializes logins and renewals, which talk to the login server;
	// mu guards st and is never held across the network, so that incoming
	// signals (which read the pinned login key) never wait on the login server.
	renewMu sync.Mutex
	mu      sync.Mutex
	st      State
}

// New opens (or creates) the home and its device key.
func New(cfg Config) (*Client, error) {
	h, err := openHome(cfg.Home)
	if err != nil {
		return nil, err
	}
	key, err := h.key()
	if err != nil {
		return nil, err
	}
	st, err := h.load()
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: cfg.Logger, now: cfg.Now, home: h, key: key, st: st, hosts: openHostCache(h.dir),
		health: healthClient(cfg.HTTPClient)}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.LoginURL != "" && cfg.LoginURL != c.st.LoginURL {
		if c.st.LoginURL != "" {
			c.hosts.reset() // another login server's supernodes would not take its credentials
		}
		c.st.LoginURL = cfg.LoginURL
		// A different login server: the old credential means nothing there.
		c.st.Credential, c.st.Expires, c.st.RefreshToken, c.st.LoginKey, c.st.Supernodes = "", 0, "", nil, nil
	}
	if cfg.User != "" && cfg.User != c.st.User {
		c.st.User = cfg.User
		c.st.Credential, c.st.Expires, c.st.RefreshToken = "", 0, ""
	}
	return c, nil
}

// User is the user this client acts as ("" before the first login).
func (c *Client) User() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.User
}

// PublicKey is the device's public key.
func (c *Client) PublicKey() ed25519.PublicKey { return c.key.Public().(ed25519.PublicKey) }

func (c *Client) loginClient() (*loginapi.Client, error) {
	c.mu.Lock()
	url := c.st.LoginURL
	c.mu.Unlock()
	if url == "" {
		return nil, ErrNoLoginURL
	}
	return loginapi.NewClient(url, c.cfg.HTTPClient), nil
}

// state returns a copy of the home's state.
func (c *Client) state() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// Register creates an account on the login server.
func (c *Client) Register(ctx context.Context, user, password string) error {
	if err := identity.CheckUser(user); err != nil {
		return err
	}
	lc, err := c.loginClient()
	if err != nil {
		return err
	}
	return lc.Register(ctx, user, password)
}

// Login logs in with a password and stores the credential and refresh token in
// the home (never the password).
func (c *Client) Login(ctx context.Context, user, password string) error {
	if err := identity.CheckUser(user); err != nil {
		return err
	}
	c.renewMu.Lock()
	defer c.renewMu.Unlock()
	lc, err := c.loginClient()
	if err != nil {
		return err
	}
	resp, err := lc.Login(ctx, user, password, c.PublicKey())
	if err != nil {
		return err
	}
	if err := c.store(resp); err != nil {
		return err
	}
	// Publish this device's encryption key at once, so messages sent
	// before it first goes online wait in its mailbox.
	return c.registerDevice(ctx, lc, resp.Credential, resp.User)
}

// registerDevice publishes the home's X25519 key, signed by its device key,
// at the login server.
func (c *Client) registerDevice(ctx context.Context, lc *loginapi.Client, cred, user string) error {
	x, err := deviceX25519(c.home.dir)
	if err != nil {
		return err
	}
	xpub := x.PublicKey().Bytes()
	if _, err := lc.PutDevice(ctx, cred, xpub, loginapi.SignDevice(c.key, user, xpub)); err != nil {
		return fmt.Errorf("client: register device: %w", err)
	}
	return nil
}

// ChangePassword changes the user's password; the login server revokes every
// refresh token, so this home logs in again with the new password.
func (c *Client) ChangePassword(ctx context.Context, oldPassword, newPassword string) error {
	c.renewMu.Lock()
	defer c.renewMu.Unlock()
	user := c.User()
	if user == "" {
		return ErrNoUser
	}
	lc, err := c.loginClient()
	if err != nil {
		return err
	}
	if err := lc.ChangePassword(ctx, user, oldPassword, newPassword); err != nil {
		return err
	}
	resp, err := lc.Login(ctx, user, newPassword, c.PublicKey())
	if err != nil {
		return err
	}
	return c.store(resp)
}

// store checks a login response and keeps it in the home.
func (c *Client) store(resp *loginapi.LoginResponse) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cred, err := identity.Verify(resp.LoginKey, resp.Credential, c.now())
	if err != nil {
		return fmt.Errorf("client: login: credential from the login server does not verify: %w", err)
	}
	if !cred.Key().Equal(c.PublicKey()) || cred.User != resp.User {
		return fmt.Errorf("client: login: credential names another key or user: %w", identity.ErrBadSignature)
	}
	if len(c.st.LoginKey) > 0 && !ed25519.PublicKey(c.st.LoginKey).Equal(ed25519.PublicKey(resp.LoginKey)) {
		return fmt.Errorf("client: login at %s: %w (remove %s/%s to trust the new key)", c.st.LoginURL, ErrLoginKeyChange, c.home.dir, stateFile)
	}
	c.st.User = resp.User
	c.st.Credential, c.st.Expires = resp.Credential, resp.Expires
	c.st.RefreshToken, c.st.RefreshExpires = resp.RefreshToken, resp.RefreshExpires
	c.st.LoginKey = resp.LoginKey
	c.st.Supernodes = resp.Supernodes
	return c.home.save(c.st)
}

// Credential returns a credential valid for at least RenewBefore: the stored one,
// else one renewed with the refresh token, else one from a password login.
func (c *Client) Credential(ctx context.Context) (string, error) {
	tok, _, err := c.credential(ctx, false)
	return tok, err
}

// fresh returns the stored credential when it verifies and is not due for
// renewal (or, with due false, merely not expired).
func (c *Client) fresh(st State, now time.Time, due bool) (identity.Credential, bool) {
	if st.Credential == "" || len(st.LoginKey) == 0 {
		return identity.Credential{}, false
	}
	cred, err := identity.Verify(st.LoginKey, st.Credential, now)
	if err != nil || !cred.Key().Equal(c.PublicKey()) || cred.User != st.User {
		return identity.Credential{}, false
	}
	if due && !now.Add(c.renewBefore(cred)).Before(cred.ExpiresAt()) {
		return cred, false
	}
	return cred, now.Before(cred.ExpiresAt())
}

// credential returns the token and its credential, renewing it when due: with
// the refresh token, else with a password login. When the login server cannot
// be reached, a stored credential that has not yet expired is still returned:
// the login server is not on the path of signalling.
func (c *Client) credential(ctx context.Context, force bool) (string, identity.Credential, error) {
	st := c.state()
	if st.User == "" {
		return "", identity.Credential{}, ErrNoUser
	}
	if cred, ok := c.fresh(st, c.now(), true); ok && !force {
		return st.Credential, cred, nil
	}
	c.renewMu.Lock()
	defer c.renewMu.Unlock()
	st = c.state() // another goroutine may have renewed it meanwhile
	now := c.now()
	if cred, ok := c.fresh(st, now, true); ok && !force {
		return st.Credential, cred, nil
	}
	resp, err := c.renew(ctx, st, now)
	if err != nil {
		if cred, ok := c.fresh(st, now, false); ok {
			c.log.Warn("renewing the credential failed; using the current one until it expires", "expires", cred.ExpiresAt(), "err", err)
			return st.Credential, cred, nil
		}
		return "", identity.Credential{}, err
	}
	if err := c.store(resp); err != nil {
		return "", identity.Credential{}, err
	}
	st = c.state()
	cred, err := identity.Verify(st.LoginKey, st.Credential, now)
	return st.Credential, cred, err
}

// renew asks the login server for a new credential (renewMu held).
func (c *Client) renew(ctx context.Context, st State, now time.Time) (*loginapi.LoginResponse, error) {
	lc, err := c.loginClient()
	if err != nil {
		return nil, err
	}
	if st.RefreshToken != "" && now.Unix() < st.RefreshExpires {
		resp, err := lc.Refresh(ctx, st.User, st.RefreshToken, c.PublicKey())
		if err == nil || !errors.Is(err, loginapi.ErrInvalidRefresh) {
			return resp, err
		}
		c.log.Info("refresh token no longer valid; logging in with the password")
	}
	// Asking for a password is pointless when the login server does not
	// answer: say that instead ("a password is needed" would mislead).
	if _, err := lc.Key(ctx); errors.Is(err, loginapi.ErrUnreachable) {
		return nil, err
	}
	if c.cfg.Password == nil {
		return nil, ErrNeedPassword
	}
	pw, err := c.cfg.Password()
	if err != nil {
		return nil, err
	}
	if pw == "" {
		return nil, ErrNeedPassword
	}
	return lc.Login(ctx, st.User, pw, c.PublicKey())
}

func (c *Client) renewBefore(cred identity.Credential) time.Duration {
	if c.cfg.RenewBefore > 0 {
		return c.cfg.RenewBefore
	}
	return time.Duration(cred.Expires-cred.NotBefore) * time.Second / 3
}

// loginKey returns the pinned login server key.
func (c *Client) loginKey() ed25519.PublicKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.LoginKey
}

// UserExists asks the login server whether user has an account.
func (c *Client) UserExists(ctx context.Context, user string) (bool, error) {
	lc, err := c.loginClient()
	if err != nil {
		return false, err
	}
	return lc.UserExists(ctx, user)
}

// supernodes returns the freshest list: from the login server, or the last one
// the home saw when the login server does not answer (err says why).
func (c *Client) supernodes(ctx context.Context) (_ []loginapi.SupernodeInfo, err error) {
	lc, err := c.loginClient()
	cached := c.state().Supernodes
	if err != nil {
		return cached, err
	}
	list, err := lc.Supernodes(ctx)
	if err != nil || len(list) == 0 {
		return cached, err
	}
	c.mu.Lock()
	c.st.Supernodes = list
	err = c.home.save(c.st)
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("saving supernode list", "err", err)
	}
	return list, nil
}
