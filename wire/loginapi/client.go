package loginapi

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

// MaxRetryAfter caps [APIError.RetryAfter]: a longer wait announced by a
// server (or anything claiming to be one) is cut to it.
const MaxRetryAfter = 7 * 24 * time.Hour

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

// WithClock returns a copy of c that dates the requests it signs (heartbeat,
// leave) by now instead of time.Now.
func (c *Client) WithClock(now func() time.Time) *Client {
	cp := *c
	cp.now = now
	return &cp
}

// Register creates an account. Errors: ErrUserExists, ErrBadRequest (invalid
// name or password length), ErrRateLimited (too many registrations from this
// address or in all; see [APIError.RetryAfter]), ErrUnreachable, ErrServer.
func (c *Client) Register(ctx context.Context, user, password string) error {
	var out UserResponse
	return c.do(ctx, http.MethodPost, "/api/v1/register", RegisterRequest{User: user, Password: password}, &out, nil)
}

// Login checks the password and returns a credential binding user to pub,
// a refresh token and the supernode list. Errors: ErrWrongPassword (a wrong
// password or an unknown user: the server does not say which),
// ErrRateLimited (see [APIError.RetryAfter]), ErrBadRequest, ErrUnreachable,
// ErrServer. (ErrUnknownUser only from a server older than that rule.)
func (c *Client) Login(ctx context.Context, user, password string, pub ed25519.PublicKey) (*LoginResponse, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("login: public key is %d bytes, want %d: %w", len(pub), ed25519.PublicKeySize, ErrBadRequest)
	}
	req := LoginRequest{User: user, Password: password, PublicKey: base64.StdEncoding.EncodeToString(pub)}
	return c.loginLike(ctx, "/api/v1/login", req, user, pub, map[int]error{
		http.StatusNotFound:     ErrUnknownUser,
		http.StatusUnauthorized: ErrWrongPassword,
	})
}

// Refresh renews the credential with a refresh token from an earlier
// [LoginResponse], binding it to pub (which may be a new key). The same
// refresh token is returned with a later expiry. Errors: ErrInvalidRefresh,
// ErrDeviceRemoved (pub, or the key the token was last used with, was
// removed from the user's devices: only a password login with that key
// brings it back), ErrBadRequest, ErrUnreachable, ErrServer.
func (c *Client) Refresh(ctx context.Context, user, refreshToken string, pub ed25519.PublicKey) (*LoginResponse, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("login: public key is %d bytes, want %d: %w", len(pub), ed25519.PublicKeySize, ErrBadRequest)
	}
	req := RefreshRequest{User: user, RefreshToken: refreshToken, PublicKey: base64.StdEncoding.EncodeToString(pub)}
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
	var out UserResponse
	return c.do(ctx, http.MethodPost, "/api/v1/password",
		PasswordRequest{User: user, Password: oldPassword, NewPassword: newPassword}, &out,
		map[int]error{
			http.StatusNotFound:     ErrUnknownUser,
			http.StatusUnauthorized: ErrWrongPassword,
		})
}

// Key fetches the login server's public key. Pin it out of band where the
// transport is not trusted.
func (c *Client) Key(ctx context.Context) (ed25519.PublicKey, error) {
	var out KeyResponse
	if err := c.do(ctx, http.MethodGet, "/api/v1/key", nil, &out, nil); err != nil {
		return nil, err
	}
	if out.Alg != identity.Alg || len(out.PublicKey) != ed25519.PublicKeySize {
		return nil, c.badResponse(fmt.Sprintf("key answer has alg %q and %d key bytes", Sanitize(out.Alg), len(out.PublicKey)))
	}
	return ed25519.PublicKey(out.PublicKey), nil
}

// UserExists reports whether an account named user exists (false means
// "unknown user", as opposed to merely offline). The server limits these
// lookups per client address: ErrRateLimited (see [APIError.RetryAfter]).
func (c *Client) UserExists(ctx context.Context, user string) (bool, error) {
	var out UserResponse
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
	var out HeartbeatResponse
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
	var out LeaveResponse
	return c.do(ctx, http.MethodDelete, "/api/v1/supernodes", req, &out,
		map[int]error{http.StatusForbidden: ErrKeyMismatch})
}

// signSupernode builds a heartbeat or leave for addr signed by key at the
// client's clock.
func (c *Client) signSupernode(addr string, key ed25519.PrivateKey, sigCtx string) (SignedRequest, error) {
	if len(key) != ed25519.PrivateKeySize {
		return SignedRequest{}, fmt.Errorf("login: node key is %d bytes, want %d: %w", len(key), ed25519.PrivateKeySize, ErrBadRequest)
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	pub := key.Public().(ed25519.PublicKey)
	ts := now().Unix()
	sig := identity.SignContext(key, sigCtx, SupernodeMessage(addr, pub, ts))
	return SignedRequest{
		Addr: addr,
		Key:  base64.StdEncoding.EncodeToString(pub),
		TS:   ts,
		Sig:  base64.StdEncoding.EncodeToString(sig),
	}, nil
}

// Supernodes returns the live supernodes, freshest first.
func (c *Client) Supernodes(ctx context.Context) ([]SupernodeInfo, error) {
	var out SupernodesResponse
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
	return c.doAuth(ctx, "", method, path, in, out, kinds)
}

// doAuth is do with "Authorization: Parley cred" when cred is not empty.
func (c *Client) doAuth(ctx context.Context, cred, method, path string, in, out any, kinds map[int]error) error {
	return c.doHeader(ctx, cred, nil, method, path, in, out, kinds)
}

// doHeader is doAuth that also sends the headers in hdr.
func (c *Client) doHeader(ctx context.Context, cred string, hdr http.Header, method, path string, in, out any, kinds map[int]error) error {
	var body []byte
	ctype := ""
	if in != nil {
		// No HTML escaping: mailbox blobs travel byte for byte.
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(in); err != nil {
			return fmt.Errorf("login: encode request: %w", err)
		}
		body, ctype = b.Bytes(), "application/json"
	}
	raw, err := c.send(ctx, cred, hdr, method, path, ctype, body, kinds)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return c.badResponse(fmt.Sprintf("%s %s: %s", method, path, JSONErrorMessage(err)))
	}
	return nil
}

// send sends body (none when ctype is "") with "Authorization: Parley
// cred" when cred is not empty and the headers in hdr, and returns the body
// of a 2xx answer (at most maxResponseBytes). Error answers become
// *APIError; kinds maps statuses to sentinels for this call on top of the
// common ones.
func (c *Client) send(ctx context.Context, cred string, hdr http.Header, method, path, ctype string, body []byte, kinds map[int]error) ([]byte, error) {
	var rd io.Reader
	if ctype != "" {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("login: %w at %s: %w", ErrUnreachable, c.base, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", AuthScheme+" "+cred)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("login: %s %s: %w", method, path, ctx.Err())
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("login: %w at %s: %w", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("login: %s %s: %w", method, path, ctx.Err())
		}
		return nil, fmt.Errorf("login: %w at %s: reading answer: %w", ErrUnreachable, c.base, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return raw, nil
	}
	return nil, c.apiError(resp, raw, kinds)
}

func (c *Client) apiError(resp *http.Response, raw []byte, kinds map[int]error) error {
	var e ErrorResponse
	msg := ""
	if json.Unmarshal(raw, &e) == nil {
		msg = sanitizeLine(e.Error)
	}
	ae := &APIError{Status: resp.StatusCode, Message: msg, Item: -1}
	if msg != "" && e.Item != nil && *e.Item >= 0 && *e.Item < MaxMailboxItems {
		ae.Item = *e.Item
	}
	if msg == "" {
		// Every answer of a login server carries a JSON error; this one
		// comes from something else (a proxy, another service).
		ae.Kind = ErrServer
	} else if resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(msg, ErrDeviceRemoved.Error()) {
		// Before kinds: on refresh it is not ErrInvalidRefresh, so that a
		// client does not take it for an expired token.
		ae.Kind, ae.detail = ErrDeviceRemoved, ErrUnauthorized
	} else if k, ok := kinds[resp.StatusCode]; ok {
		ae.Kind = k
	} else {
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			ae.Kind = ErrBadRequest
		case http.StatusConflict:
			ae.Kind = ErrUserExists
		case http.StatusUnauthorized:
			ae.Kind = ErrUnauthorized
		case http.StatusInsufficientStorage:
			ae.Kind = ErrQuota
		case http.StatusTooManyRequests:
			ae.Kind = ErrRateLimited
		default:
			ae.Kind = ErrServer
		}
	}
	switch {
	case ae.Kind == ErrUnknownFile && strings.HasPrefix(msg, ErrNoChunk.Error()):
		// A file that exists without the chunk asked for.
		ae.Kind = ErrNoChunk
	case ae.Kind == ErrTooLarge:
		ae.detail = ErrBadRequest
	}
	if ae.Kind == ErrBadRequest {
		for _, d := range []error{identity.ErrBadUser, ErrBadSignature, ErrClockSkew, ErrReplayed, ErrUnknownDevice, ErrBadPass} {
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
			// Clamped: a huge value must not overflow into a negative wait.
			ae.RetryAfter = time.Duration(min(secs, int64(MaxRetryAfter/time.Second))) * time.Second
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

// userKinds maps the statuses of the user endpoints to sentinels. 401 is
// ErrUnauthorized, 429 ErrRateLimited and 507 ErrQuota for every call.
func userKinds() map[int]error {
	return map[int]error{
		http.StatusNotFound:  ErrUnknownUser,
		http.StatusForbidden: ErrNotContact,
		http.StatusConflict:  ErrNoRequest,
	}
}

// checkCred refuses an empty credential before any request.
func checkCred(op, cred string) error {
	if cred == "" {
		return fmt.Errorf("login: %s: %w: no credential (log in first)", op, ErrUnauthorized)
	}
	return nil
}

// PostMailbox stores items in the recipients' device mailboxes, all or none:
// 1 to MaxMailboxItems items, each to the caller's own user, an accepted
// contact or a user whose [Pass] the item carries, to a registered device,
// with an id of 1 to MaxMessageIDBytes bytes and a blob of at most
// MaxBlobBytes. An item whose (to_user,
// to_device, id) from this user is already waiting counts as a duplicate,
// not an error, so a retried post is safe. Errors: ErrUnauthorized,
// ErrUnknownUser (a recipient), ErrNotContact, ErrBadRequest (with
// ErrUnknownDevice for an unregistered to_device, ErrBadPass for a
// malformed pass, checked before any request), ErrQuota (a device's
// mailbox is full), ErrUnreachable, ErrServer.
func (c *Client) PostMailbox(ctx context.Context, cred string, items []MailboxItem) (*MailboxResult, error) {
	if err := checkCred("mailbox post", cred); err != nil {
		return nil, err
	}
	if len(items) == 0 || len(items) > MaxMailboxItems {
		return nil, fmt.Errorf("login: mailbox post: %d items, want 1 to %d: %w", len(items), MaxMailboxItems, ErrBadRequest)
	}
	for i, it := range items {
		if it.Pass != nil {
			if err := it.Pass.Verify(); err != nil {
				return nil, fmt.Errorf("login: mailbox post: items[%d].pass: %w: %w", i, ErrBadRequest, err)
			}
		}
	}
	var out MailboxResult
	if err := c.doAuth(ctx, cred, http.MethodPost, "/api/v1/mailbox", MailboxClientRequest{Items: items}, &out, userKinds()); err != nil {
		return nil, err
	}
	return &out, nil
}

// Mailbox fetches up to limit (0: DefaultMailboxFetch; at most
// MaxMailboxFetch) items of the caller device's mailbox, oldest first, and
// whether more wait. Items stay until acknowledged with
// [Client.AckMailbox] (or expire after Config.MailboxTTL). Errors:
// ErrUnauthorized, ErrBadRequest, ErrUnreachable, ErrServer.
func (c *Client) Mailbox(ctx context.Context, cred string, limit int) ([]MailboxEntry, bool, error) {
	if err := checkCred("mailbox", cred); err != nil {
		return nil, false, err
	}
	path := "/api/v1/mailbox"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out MailboxResponse
	if err := c.doAuth(ctx, cred, http.MethodGet, path, nil, &out, userKinds()); err != nil {
		return nil, false, err
	}
	if out.Items == nil {
		out.Items = []MailboxEntry{}
	}
	return out.Items, out.More, nil
}

// AckMailbox deletes the caller device's items with these seqs (at most
// MaxAckSeqs) and returns how many it had; seqs of other devices' items are
// ignored.
func (c *Client) AckMailbox(ctx context.Context, cred string, seqs []int64) (int, error) {
	if err := checkCred("mailbox ack", cred); err != nil {
		return 0, err
	}
	if seqs == nil {
		seqs = []int64{}
	}
	var out RemovedResponse
	if err := c.doAuth(ctx, cred, http.MethodPost, "/api/v1/mailbox/ack", AckRequest{Seqs: seqs}, &out, userKinds()); err != nil {
		return 0, err
	}
	return out.Removed, nil
}

// Contacts lists the caller's contacts by name: accepted ones with their
// status (invisible users appear offline), requests the caller made
// (ContactRequested) and requests waiting for the caller (ContactPending).
func (c *Client) Contacts(ctx context.Context, cred string) ([]Contact, error) {
	if err := checkCred("contacts", cred); err != nil {
		return nil, err
	}
	var out ContactsResponse
	if err := c.doAuth(ctx, cred, http.MethodGet, "/api/v1/contacts", nil, &out, userKinds()); err != nil {
		return nil, err
	}
	if out.Contacts == nil {
		out.Contacts = []Contact{}
	}
	return out.Contacts, nil
}

func (c *Client) contactOp(ctx context.Context, op, cred, user, suffix string) (string, error) {
	if err := checkCred("contact "+op, cred); err != nil {
		return "", err
	}
	var out Contact
	if err := c.doAuth(ctx, cred, http.MethodPost, "/api/v1/contacts/"+url.PathEscape(user)+suffix, nil, &out, userKinds()); err != nil {
		return "", err
	}
	return out.State, nil
}

// RequestContact asks user to become a contact, or accepts if user already
// asked the caller; it returns the new state (ContactRequested or
// ContactAccepted). Asking again is a no-op. Errors: ErrUnauthorized,
// ErrUnknownUser, ErrBadRequest (oneself, a bad name), ErrQuota (either
// contact list is full), ErrRateLimited (too many new requests today),
// ErrUnreachable, ErrServer.
func (c *Client) RequestContact(ctx context.Context, cred, user string) (string, error) {
	return c.contactOp(ctx, "request", cred, user, "")
}

// AcceptContact accepts user's pending request (a no-op when already
// accepted) and returns ContactAccepted. Errors: ErrNoRequest when user has
// not asked, and as for [Client.RequestContact].
func (c *Client) AcceptContact(ctx context.Context, cred, user string) (string, error) {
	return c.contactOp(ctx, "accept", cred, user, "/accept")
}

// DeclineContact ends any relation with user, on both sides: it declines
// their pending request, withdraws the caller's own request, or removes an
// accepted contact. With no relation it is a no-op. It returns ContactNone.
func (c *Client) DeclineContact(ctx context.Context, cred, user string) (string, error) {
	return c.contactOp(ctx, "decline", cred, user, "/decline")
}

// SetStatus stores the caller's status: StatusOnline, StatusAway,
// StatusBusy or StatusInvisible (ErrBadRequest otherwise). It applies to all
// the user's devices; contacts see invisible as offline.
func (c *Client) SetStatus(ctx context.Context, cred, status string) error {
	if err := checkCred("set status", cred); err != nil {
		return err
	}
	var out StatusBody
	return c.doAuth(ctx, cred, http.MethodPut, "/api/v1/status", StatusBody{Status: status}, &out, userKinds())
}

// Status returns the caller's stored status (StatusOnline until set).
func (c *Client) Status(ctx context.Context, cred string) (string, error) {
	if err := checkCred("status", cred); err != nil {
		return "", err
	}
	var out StatusBody
	if err := c.doAuth(ctx, cred, http.MethodGet, "/api/v1/status", nil, &out, userKinds()); err != nil {
		return "", err
	}
	return out.Status, nil
}

// Search lists up to limit (0 or more than MaxSearchResults:
// MaxSearchResults) user names starting with prefix, in byte order. prefix
// follows the user name rules (1 to 32 characters of a-z, 0-9, '.', '_',
// '-', starting with a letter). Errors: ErrUnauthorized, ErrBadRequest,
// ErrRateLimited (see [APIError.RetryAfter]), ErrUnreachable, ErrServer.
func (c *Client) Search(ctx context.Context, cred, prefix string, limit int) ([]string, error) {
	if err := checkCred("search", cred); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxSearchResults {
		limit = MaxSearchResults
	}
	q := url.Values{"prefix": {prefix}, "limit": {strconv.Itoa(limit)}}
	var out SearchResponse
	if err := c.doAuth(ctx, cred, http.MethodGet, "/api/v1/users?"+q.Encode(), nil, &out, userKinds()); err != nil {
		return nil, err
	}
	if out.Users == nil {
		out.Users = []string{}
	}
	return out.Users, nil
}
