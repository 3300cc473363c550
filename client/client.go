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
	"github.com/parley/parley/login"
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
	// HTTPClient talks to the login server; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// RenewBefore is how long before its expiry a credential is renewed.
	// Default: a third of its lifetime.
	RenewBefore time.Duration
}

// Client is one device of one user.
type Client struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	home *home
	key  ed25519.PrivateKey

	mu sync.Mutex // guards state and serializes logins/refreshes
	st State
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
	c := &Client{cfg: cfg, log: cfg.Logger, now: cfg.Now, home: h, key: key, st: st}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.LoginURL != "" && cfg.LoginURL != c.st.LoginURL {
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

func (c *Client) loginClient() (*login.Client, error) {
	if c.st.LoginURL == "" {
		return nil, ErrNoLoginURL
	}
	return login.NewClient(c.st.LoginURL, c.cfg.HTTPClient), nil
}

// Register creates an account on the login server.
func (c *Client) Register(ctx context.Context, user, password string) error {
	if err := identity.CheckUser(user); err != nil {
		return err
	}
	c.mu.Lock()
	lc, err := c.loginClient()
	c.mu.Unlock()
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
	c.mu.Lock()
	defer c.mu.Unlock()
	lc, err := c.loginClient()
	if err != nil {
		return err
	}
	resp, err := lc.Login(ctx, user, password, c.PublicKey())
	if err != nil {
		return err
	}
	return c.storeLocked(resp)
}

// ChangePassword changes the user's password; the login server revokes every
// refresh token, so this home logs in again with the new password.
func (c *Client) ChangePassword(ctx context.Context, oldPassword, newPassword string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.User == "" {
		return ErrNoUser
	}
	lc, err := c.loginClient()
	if err != nil {
		return err
	}
	if err := lc.ChangePassword(ctx, c.st.User, oldPassword, newPassword); err != nil {
		return err
	}
	resp, err := lc.Login(ctx, c.st.User, newPassword, c.PublicKey())
	if err != nil {
		return err
	}
	return c.storeLocked(resp)
}

func (c *Client) storeLocked(resp *login.LoginResponse) error {
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

// credential returns the token and its credential; force renews even a fresh one.
func (c *Client) credential(ctx context.Context, force bool) (string, identity.Credential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.User == "" {
		return "", identity.Credential{}, ErrNoUser
	}
	now := c.now()
	if !force && c.st.Credential != "" && len(c.st.LoginKey) > 0 {
		cred, err := identity.Verify(c.st.LoginKey, c.st.Credential, now)
		if err == nil && cred.Key().Equal(c.PublicKey()) && cred.User == c.st.User && now.Add(c.renewBefore(cred)).Before(cred.ExpiresAt()) {
			return c.st.Credential, cred, nil
		}
	}
	lc, err := c.loginClient()
	if err != nil {
		return "", identity.Credential{}, err
	}
	var resp *login.LoginResponse
	if c.st.RefreshToken != "" && now.Unix() < c.st.RefreshExpires {
		resp, err = lc.Refresh(ctx, c.st.User, c.st.RefreshToken, c.PublicKey())
		if err != nil && !errors.Is(err, login.ErrInvalidRefresh) {
			return "", identity.Credential{}, err
		}
		if err != nil {
			c.log.Info("refresh token no longer valid; logging in with the password")
			resp = nil
		}
	}
	if resp == nil {
		if c.cfg.Password == nil {
			return "", identity.Credential{}, ErrNeedPassword
		}
		pw, err := c.cfg.Password()
		if err != nil {
			return "", identity.Credential{}, err
		}
		if pw == "" {
			return "", identity.Credential{}, ErrNeedPassword
		}
		if resp, err = lc.Login(ctx, c.st.User, pw, c.PublicKey()); err != nil {
			return "", identity.Credential{}, err
		}
	}
	if err := c.storeLocked(resp); err != nil {
		return "", identity.Credential{}, err
	}
	cred, err := identity.Verify(c.st.LoginKey, c.st.Credential, now)
	return c.st.Credential, cred, err
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
	c.mu.Lock()
	lc, err := c.loginClient()
	c.mu.Unlock()
	if err != nil {
		return false, err
	}
	return lc.UserExists(ctx, user)
}

// supernodes returns the freshest list: from the login server, or the last one
// the home saw when the login server does not answer.
func (c *Client) supernodes(ctx context.Context) []login.SupernodeInfo {
	c.mu.Lock()
	lc, err := c.loginClient()
	cached := c.st.Supernodes
	c.mu.Unlock()
	if err != nil {
		return cached
	}
	list, err := lc.Supernodes(ctx)
	if err != nil || len(list) == 0 {
		return cached
	}
	c.mu.Lock()
	c.st.Supernodes = list
	err = c.home.save(c.st)
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("saving supernode list", "err", err)
	}
	return list
}
