// Package nodeid is a supernode's identity: an Ed25519 node key, and the
// dial-back proof that the holder of a key answers at an address.
//
// Whoever wants to know that a supernode really serves the address it
// advertises (the login server before listing it, a supernode before taking a
// gossiped member into its ring, a supernode checking a client that wants to
// promote itself) dials the address back:
//
//	GET {http(s)://host:port}/v1/identify?nonce=BASE64URL(32 random bytes)
//	200 {"v":1,"name":"host:port","key":BASE64(32 bytes),"sig":BASE64(64 bytes)}
//
// sig is the node key's signature, with context [IdentifyContext], over
// nonce || name. The checker compares name with the host:port it dialled and,
// when it expects a key, key with that one. The answer is at most
// [MaxIdentifySize] bytes; redirects are not followed.
package nodeid

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/parley/parley/internal/identity"
)

// Version is the identify answer's "v".
const Version = 1

// IdentifyPath is where a node answers dial-backs.
const IdentifyPath = "/v1/identify"

// IdentifyContext is the signature context of an identify answer.
const IdentifyContext = "parley-identify-v1"

// MaxIdentifySize caps an identify answer in bytes.
const MaxIdentifySize = 4 << 10

// NonceSize is the size of a dial-back nonce.
const NonceSize = 32

// Sentinel errors.
var (
	ErrBadURL      = errors.New("not a ws://, wss://, http:// or https:// URL with host:port")
	ErrUnreachable = errors.New("dial-back failed")
	ErrBadAnswer   = errors.New("dial-back answer is malformed")
	ErrWrongName   = errors.New("dial-back answered for another address")
	ErrWrongKey    = errors.New("dial-back answered with another key")
	ErrBadSig      = errors.New("dial-back signature does not verify")
	ErrKeyFile     = errors.New("node key file is corrupt")
)

// Answer is the body of an identify reply.
type Answer struct {
	V    int    `json:"v"`
	Name string `json:"name"`
	Key  []byte `json:"key"`
	Sig  []byte `json:"sig"`
}

// Message is what the node key signs: nonce || name.
func Message(nonce []byte, name string) []byte {
	m := make([]byte, 0, len(nonce)+len(name))
	return append(append(m, nonce...), name...)
}

// Handler answers GET IdentifyPath for the node called name (its host:port).
func Handler(name string, key ed25519.PrivateKey) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			io.WriteString(w, `{"error":"use GET"}`+"\n")
			return
		}
		nonce, err := base64.RawURLEncoding.DecodeString(r.URL.Query().Get("nonce"))
		if err != nil || len(nonce) != NonceSize {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"nonce must be 32 bytes, base64url"}`+"\n")
			return
		}
		json.NewEncoder(w).Encode(Answer{
			V: Version, Name: name, Key: key.Public().(ed25519.PublicKey),
			Sig: identity.SignContext(key, IdentifyContext, Message(nonce, name)),
		})
	})
}

// HostPort returns the host:port of a ws://, wss://, http:// or https:// URL
// and the http(s) base URL of the same server.
func HostPort(rawURL string) (hostport, base string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || u.User != nil {
		return "", "", fmt.Errorf("nodeid: %q: %w", rawURL, ErrBadURL)
	}
	scheme := ""
	switch u.Scheme {
	case "ws", "http":
		scheme = "http"
	case "wss", "https":
		scheme = "https"
	default:
		return "", "", fmt.Errorf("nodeid: %q: %w", rawURL, ErrBadURL)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return "", "", fmt.Errorf("nodeid: %q: %w", rawURL, ErrBadURL)
	}
	return u.Host, scheme + "://" + u.Host, nil
}

// Check dials rawURL's server back and returns the key that proved it answers
// there. want, when not nil, is the key the answer must carry. hc nil means a
// client with no redirects and a 5 s timeout; a given client's redirect policy
// is replaced by one that refuses redirects.
func Check(ctx context.Context, hc *http.Client, rawURL string, want ed25519.PublicKey) (ed25519.PublicKey, error) {
	name, base, err := HostPort(rawURL)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, NonceSize)
	rand.Read(nonce)
	c := http.Client{Timeout: 5e9}
	if hc != nil {
		c = *hc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		base+IdentifyPath+"?nonce="+base64.RawURLEncoding.EncodeToString(nonce), nil)
	if err != nil {
		return nil, fmt.Errorf("nodeid: check %s: %w", name, ErrBadURL)
	}
	resp, err := c.Do(req)
	if err != nil {
		// Both wrapped: a caller may look for the TLS certificate's error.
		return nil, fmt.Errorf("nodeid: check %s: %w: %w", name, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxIdentifySize+1))
	if err != nil {
		return nil, fmt.Errorf("nodeid: check %s: %w: %v", name, ErrUnreachable, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("nodeid: check %s: %w: HTTP %d", name, ErrUnreachable, resp.StatusCode)
	}
	a, err := ParseAnswer(b)
	if err != nil {
		return nil, fmt.Errorf("nodeid: check %s: %w", name, err)
	}
	if !strings.EqualFold(a.Name, name) {
		return nil, fmt.Errorf("nodeid: check %s: answered as %q: %w", name, a.Name, ErrWrongName)
	}
	key := ed25519.PublicKey(a.Key)
	if want != nil && !key.Equal(want) {
		return nil, fmt.Errorf("nodeid: check %s: %w", name, ErrWrongKey)
	}
	if !identity.VerifyContext(key, IdentifyContext, Message(nonce, a.Name), a.Sig) {
		return nil, fmt.Errorf("nodeid: check %s: %w", name, ErrBadSig)
	}
	return key, nil
}

// ParseAnswer decodes an identify answer from untrusted bytes.
func ParseAnswer(b []byte) (Answer, error) {
	var a Answer
	if len(b) > MaxIdentifySize {
		return a, fmt.Errorf("%w: %d bytes", ErrBadAnswer, len(b))
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("%w: %v", ErrBadAnswer, err)
	}
	switch {
	case a.V != Version:
		return a, fmt.Errorf("%w: version %d", ErrBadAnswer, a.V)
	case len(a.Key) != ed25519.PublicKeySize, len(a.Sig) != ed25519.SignatureSize, a.Name == "":
		return a, fmt.Errorf("%w: missing name, key or sig", ErrBadAnswer)
	}
	return a, nil
}

// LoadOrCreate returns the node key stored at path (a 32-byte seed, mode
// 0600), creating it on first use. path "" makes a fresh key that is not kept.
func LoadOrCreate(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	seed, err := os.ReadFile(path)
	if err == nil {
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("nodeid: key %s: %w", path, ErrKeyFile)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("nodeid: key %s: %w", path, err)
	}
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreate(path) // another process made it first
		}
		return nil, fmt.Errorf("nodeid: key %s: %w", path, err)
	}
	_, err = f.Write(k.Seed())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("nodeid: key %s: %w", path, err)
	}
	return k, nil
}
