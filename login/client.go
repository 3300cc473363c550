package login

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley/parley/internal/identity"
)

// maxResponseBytes caps how much of a response the client reads.
const maxResponseBytes = 2 << 20

// Client talks to a login server's HTTP API. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
	now  func() time.Time // signing clock; nil means time.Now (tests set it)
}

// NewClient returns a client for the login server at baseURL (for example
// "https://login.example.org"). A nil hc means an http.Client with a 10 s
// timeout.
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// Register creates an account. Errors: ErrUserExists, ErrBadRequest (invalid
// name or password length), ErrUnreachable, ErrServer.
func (c *Client) Register(ctx context.Context, user, password string) error {
	var out userResponse
	return c.do(ctx, http.MethodPost, "/api/v1/register", registerRequest{User: user, Password: password}, &out, nil)
}

// Login checks the password and returns a credential binding user to pub,
// a refresh token and the supernode list. Errors: ErrUnknownUser,
// ErrWrongPassword, ErrRateLimited (see [APIError.RetryAfter]), ErrBadRequest,
// ErrUnreachable, ErrServer.
func (c *Client) Login(ctx context.Context, user, password string, pub ed25519.PublicKey) (*LoginResponse, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("login: public key is %d bytes, want %d: %w", len(pub), ed25519.PublicKeySize, ErrBadRequest)
	}
	req := loginRequest{User: user, Password: password, PublicKey: base64.StdEncoding.EncodeToString(pub)}
	return c.loginLike(ctx, "/api/v1/login", req, user, pub, map[int]error{
		http.StatusNotFound:     ErrUnknownUser,
		http.StatusUnauthorized: ErrWrongPassword,
	})
}

// Refresh renews the credential with a refresh token from an earlier
// [LoginResponse], binding it to pub (which may be a new key). The same
// refresh token is returned with a later expiry. Errors: ErrInvalidRefresh,
// ErrBadRequest, ErrUnreachable, ErrServer.
func (c *Client) Refresh(ctx context.Context, user, refreshToken string, pub ed25519.PublicKey) (*LoginResponse, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("login: public key is %d bytes, want %d: %w", len(pub), ed25519.PublicKeySize, ErrBadRequest)
	}
	req := refreshRequest{User: user, RefreshToken: refreshToken, PublicKey: base64.StdEncoding.EncodeToString(pub)}
	return c.loginLike(ctx, "/api/v1/refresh", req, user, pub, map[int]error{
		http.StatusUnauthorized: ErrInvalidRefresh,
	})
}

func (c *Client) loginLike(ctx context.Context, path string, req any, user string, pub ed25519.PublicKey, kinds map[int]error) (*LoginResponse, error) {
	var out LoginResponse
	if err := c.do(ctx, http.MethodPost, path, req, &out, kinds); err != nil {
		return nil, err
	}
	if len(out.LoginKey) != ed25519.PublicKeySize || out.Credential == "" {
		return nil, c.badResponse("login response lacks a credential or key")
	}
	cred, _, _, err := identity.Parse(out.Credential)
	if err != nil || cred.User != user || !bytes.Equal(cred.PublicKey, pub) {
		return nil, c.badResponse("credential does not name this user and key")
	}
	if out.Supernodes == nil {
		out.Supernodes = []SupernodeInfo{}
	}
	return &out, nil
}

// ChangePassword replaces the password and revokes every refresh token of
// the user. Errors as for [Client.Login].
func (c *Client) ChangePassword(ctx context.Context, user, oldPassword, newPassword string) error {
	var out userResponse
	return c.do(ctx, http.MethodPost, "/api/v1/password",
		passwordRequest{User: user, Password: oldPassword, NewPassword: newPassword}, &out,
		map[int]error{
			http.StatusNotFound:     ErrUnknownUser,
			http.StatusUnauthorized: ErrWrongPassword,
		})
}

// Key fetches the login server's public key. Pin it out of band where the
// transport is not trusted.
func (c *Client) Key(ctx context.Context) (ed25519.PublicKey, error) {
	var out keyResponse
	if err := c.do(ctx, http.MethodGet, "/api/v1/key", nil, &out, nil); err != nil {
		return nil, err
	}
	if out.Alg != identity.Alg || len(out.PublicKey) != ed25519.PublicKeySize {
		return nil, c.badResponse(fmt.Sprintf("key answer has alg %q and %d key bytes", sanitize(out.Alg), len(out.PublicKey)))
	}
	return ed25519.PublicKey(out.PublicKey), nil
}

// UserExists reports whether an account named user exists (false means
// "unknown user", as opposed to merely offline).
func (c *Client) UserExists(ctx context.Context, user string) (bool, error) {
	var out userResponse
	err := c.do(ctx, http.MethodGet, "/api/v1/users/"+url.PathEscape(user), nil, &out,
		map[int]error{http.StatusNotFound: ErrUnknownUser})
	var ae *APIError
	if errors.As(err, &ae) && ae.Kind == ErrUnknownUser && ae.Message == ErrUnknownUser.Error() {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// Heartbeat asks the login server to list addr (the supernode's ws:// or
// wss:// URL) for the returned time-to-live; call it well within that
// period to stay listed. key is the supernode's node key (package
// internal/nodeid): the request is signed with it, and before listing addr
// (and again every Config.DialBackInterval, or when the key changes) the
// server dials addr back and expects GET /v1/identify to answer with key, so
// the supernode must already serve nodeid.Handler there. Errors:
// ErrBadRequest (with ErrBadSignature, ErrClockSkew or ErrReplayed when the
// server names one), ErrDialBack, ErrDialBackDenied, ErrDialBackLimited (see
// [APIError.RetryAfter]), ErrSupernodeListFull, ErrUnreachable, ErrServer.
func (c *Client) Heartbeat(ctx context.Context, addr string, key ed25519.PrivateKey) (time.Duration, error) {
	req, err := c.signSupernode(addr, key, HeartbeatContext)
	if err != nil {
		return 0, err
	}
	var out heartbeatResponse
	if err := c.do(ctx, http.MethodPost, "/api/v1/supernodes", req, &out,
		map[int]error{
			http.StatusForbidden:           ErrDialBackDenied,
			http.StatusUnprocessableEntity: ErrDialBack,
			http.StatusTooManyRequests:     ErrDialBackLimited,
			http.StatusServiceUnavailable:  ErrSupernodeListFull,
		}); err != nil {
		return 0, err
	}
	if out.TTL <= 0 {
		return 0, c.badResponse("heartbeat answer has no ttl")
	}
	return time.Duration(out.TTL) * time.Second, nil
}

// Leave takes addr off the supernode list, for a supernode that steps down or
// shuts down cleanly. The request is signed with key, which must be the key
// addr is listed with. Leaving an address that is not listed is not an
// error. Errors: ErrKeyMismatch, ErrBadRequest (as for Heartbeat),
// ErrUnreachable, ErrServer.
func (c *Client) Leave(ctx context.Context, addr string, key ed25519.PrivateKey) error {
	req, err := c.signSupernode(addr, key, LeaveContext)
	if err != nil {
		return err
	}
	var out leaveResponse
	return c.do(ctx, http.MethodDelete, "/api/v1/supernodes", req, &out,
		map[int]error{http.StatusForbidden: ErrKeyMismatch})
}

// signSupernode builds a heartbeat or leave for addr signed by key at the
// client's clock.
func (c *Client) signSupernode(addr string, key ed25519.PrivateKey, sigCtx string) (signedRequest, error) {
	if len(key) != ed25519.PrivateKeySize {
		return signedRequest{}, fmt.Errorf("login: node key is %d bytes, want %d: %w", len(key), ed25519.PrivateKeySize, ErrBadRequest)
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	pub := key.Public().(ed25519.PublicKey)
	ts := now().Unix()
	sig := identity.SignContext(key, sigCtx, SupernodeMessage(addr, pub, ts))
	return signedRequest{
		Addr: addr,
		Key:  base64.StdEncoding.EncodeToString(pub),
		TS:   ts,
		Sig:  base64.StdEncoding.EncodeToString(sig),
	}, nil
}

// Supernodes returns the live supernodes, freshest first.
func (c *Client) Supernodes(ctx context.Context) ([]SupernodeInfo, error) {
	var out supernodesResponse
	if err := c.do(ctx, http.MethodGet, "/api/v1/supernodes", nil, &out, nil); err != nil {
		return nil, err
	}
	if out.Supernodes == nil {
		out.Supernodes = []SupernodeInfo{}
	}
	return out.Supernodes, nil
}

func (c *Client) badResponse(what string) error {
	return &APIError{Status: http.StatusOK, Message: fmt.Sprintf("%v: bad answer from %s: %s", ErrServer, c.base, what), Kind: ErrServer}
}

// do sends in (as JSON, if non-nil) and decodes a 2xx answer into out. Error
// answers become *APIError; kinds maps statuses to sentinels for this call
// on top of the common ones.
func (c *Client) do(ctx context.Context, method, path string, in, out any, kinds map[int]error) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("login: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("login: %w at %s: %w", ErrUnreachable, c.base, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("login: %s %s: %w", method, path, ctx.Err())
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("login: %w at %s: %w", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("login: %s %s: %w", method, path, ctx.Err())
		}
		return fmt.Errorf("login: %w at %s: reading answer: %w", ErrUnreachable, c.base, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return c.badResponse(fmt.Sprintf("%s %s: %s", method, path, jsonErrorMessage(err)))
		}
		return nil
	}
	return c.apiError(resp, raw, kinds)
}

func (c *Client) apiError(resp *http.Response, raw []byte, kinds map[int]error) error {
	var e errorResponse
	msg := ""
	if json.Unmarshal(raw, &e) == nil {
		msg = sanitizeLine(e.Error)
	}
	ae := &APIError{Status: resp.StatusCode, Message: msg}
	if msg == "" {
		// Every answer of a login server carries a JSON error; this one
		// comes from something else (a proxy, another service).
		ae.Kind = ErrServer
	} else if k, ok := kinds[resp.StatusCode]; ok {
		ae.Kind = k
	} else {
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			ae.Kind = ErrBadRequest
		case http.StatusConflict:
			ae.Kind = ErrUserExists
		case http.StatusTooManyRequests:
			ae.Kind = ErrRateLimited
		default:
			ae.Kind = ErrServer
		}
	}
	if ae.Kind == ErrBadRequest {
		for _, d := range []error{identity.ErrBadUser, ErrBadSignature, ErrClockSkew, ErrReplayed} {
			if strings.HasPrefix(msg, d.Error()) {
				ae.detail = d
				break
			}
		}
	}
	if ae.Kind == ErrRateLimited || ae.Kind == ErrDialBackLimited {
		secs := e.RetryAfter
		if secs <= 0 {
			secs, _ = strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64)
		}
		if secs > 0 {
			ae.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	if ae.Kind == ErrServer {
		if msg == "" {
			msg = "unexpected answer"
		}
		ae.Message = fmt.Sprintf("%v at %s: %s (HTTP %d)", ErrServer, c.base, msg, resp.StatusCode)
	}
	return ae
}

// sanitizeLine keeps a server message on one printable line of bounded size.
func sanitizeLine(s string) string {
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
