// Package acme gets and renews a server's TLS certificate from an ACME CA
// (Let's Encrypt by default) with the client in golang.org/x/crypto/acme:
// `--acme-domain NAME` on `parley login-server` and `parley supernode`.
//
// A [Manager] serves the certificate to TLS listeners ([Manager.TLSConfig]:
// the HTTPS/WSS server and the relay's TURN-over-TLS listener), answers the
// CA's challenges (tls-alpn-01 on any of those listeners the CA reaches on
// port 443, http-01 through [Manager.HTTPHandler] on port 80), and keeps the
// account key and certificate in a cache directory, so that a restart does
// not ask the CA again.
//
// Why not autocert: autocert renews a fixed RenewBefore (30 days by default,
// never less than an hour, with up to an hour of jitter) before expiry, so a
// certificate that lives minutes — a test CA's — is either never renewed in
// a test or renewed in a loop. This manager renews when two thirds of a
// certificate's lifetime have passed (day 60 of Let's Encrypt's 90, second 20
// of a 30-second test certificate), gets the first certificate at start
// rather than at the first handshake, and says why when it cannot.
package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/parley/parley/internal/backoff"
)

// LetsEncrypt is the default directory: Let's Encrypt's production CA.
const LetsEncrypt = acme.LetsEncryptURL

// The challenge types a Manager answers.
const (
	HTTP01    = "http-01"
	TLSALPN01 = "tls-alpn-01"
)

// alpnProto is the ALPN protocol of tls-alpn-01 (RFC 8737).
const alpnProto = "acme-tls/1"

// ErrConfig means a Config is unusable (no domain, an IP address for one, no
// cache directory, a directory URL that is not https).
var ErrConfig = errors.New("acme: invalid configuration")

// Config configures [New].
type Config struct {
	// Domain is the host name the certificate is for: the name clients use
	// (required; not an IP address: public CAs issue for names).
	Domain string
	// DirectoryURL is the CA's ACME directory. Default [LetsEncrypt].
	DirectoryURL string
	// CacheDir keeps the account key and the certificate (created, mode
	// 0700; required). Keep it across restarts and upgrades: a CA limits
	// how many certificates one name gets a week.
	CacheDir string
	// Email, when set, is the account's contact (expiry notices).
	Email string
	// HTTP01 says an HTTP listener on port 80 serves [Manager.HTTPHandler]:
	// http-01 is tried first, then tls-alpn-01. Without it only tls-alpn-01
	// is tried, which needs a TLS listener with [Manager.TLSConfig] on port
	// 443 of Domain.
	HTTP01 bool
	// HTTPClient talks to the CA. nil: one with the system's roots (and
	// SSL_CERT_FILE) and a 30 s timeout.
	HTTPClient *http.Client
	// Retry is the wait between failed attempts. Zero: 1 minute, doubling
	// to an hour with jitter (a public CA counts failed validations).
	Retry backoff.Policy
	// Logger receives what the manager does; nil discards it.
	Logger *slog.Logger
}

// Manager gets and renews one certificate. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	dir   string // the cache directory of this CA
	ready chan struct{}

	mu        sync.Mutex
	cert      *tls.Certificate // nil until the first one
	readyOnce sync.Once
	alpn      map[string]*tls.Certificate // domain → tls-alpn-01 challenge certificate
	tokens    map[string]string           // http-01 path → key authorization
	lastErr   string                      // the last failure logged as a warning
}

// New checks cfg and loads a cached certificate for Domain, if one is still
// valid. Call [Manager.Run] to get (and renew) certificates.
func New(cfg Config) (*Manager, error) {
	if cfg.Domain == "" || strings.Trim(cfg.Domain, ".") != cfg.Domain || !strings.Contains(cfg.Domain, ".") {
		return nil, fmt.Errorf("%w: the domain %q is not a fully qualified host name", ErrConfig, cfg.Domain)
	}
	if net.ParseIP(cfg.Domain) != nil {
		return nil, fmt.Errorf("%w: %s is an IP address; certificates are issued for host names: point a name at it", ErrConfig, cfg.Domain)
	}
	cfg.Domain = strings.ToLower(cfg.Domain)
	if cfg.DirectoryURL == "" {
		cfg.DirectoryURL = LetsEncrypt
	}
	u, err := url.Parse(cfg.DirectoryURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: the directory %q is not an https:// URL", ErrConfig, cfg.DirectoryURL)
	}
	if cfg.CacheDir == "" {
		return nil, fmt.Errorf("%w: no cache directory", ErrConfig)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Retry.Cap == 0 {
		cfg.Retry = backoff.Policy{Floor: time.Minute, Base: time.Minute, Cap: time.Hour}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{cfg: cfg, log: log.With("component", "acme", "domain", cfg.Domain),
		dir:   filepath.Join(cfg.CacheDir, safeName(u.Host+u.Path)),
		ready: make(chan struct{}), alpn: map[string]*tls.Certificate{}, tokens: map[string]string{}}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme: cache directory: %w", err)
	}
	if c, err := m.loadCert(); err == nil {
		m.setCert(c)
		m.log.Info("acme: certificate loaded from the cache", certAttrs(c)...)
	} else if !errors.Is(err, os.ErrNotExist) {
		m.log.Info("acme: cached certificate not used", "err", err)
	}
	return m, nil
}

// safeName turns a directory URL's host and path into a directory name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.Trim(s, "/"))
}

// Domain is the name the certificate is for.
func (m *Manager) Domain() string { return m.cfg.Domain }

// Ready is closed once a certificate is there to serve.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// Certificate returns the certificate served now (nil before the first).
func (m *Manager) Certificate() *tls.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cert
}

func (m *Manager) setCert(c *tls.Certificate) {
	m.mu.Lock()
	m.cert = c
	m.mu.Unlock()
	m.readyOnce.Do(func() { close(m.ready) })
}

// TLSConfig returns the configuration of a TLS listener that serves the
// certificate and answers tls-alpn-01 challenges. A handshake before the
// first certificate waits for it (as long as the handshake may take).
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: m.getCertificate,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if !slices.Contains(hello.SupportedProtos, alpnProto) {
				return nil, nil // the listener's own configuration
			}
			m.mu.Lock()
			c := m.alpn[strings.ToLower(hello.ServerName)]
			m.mu.Unlock()
			if c == nil {
				return nil, fmt.Errorf("acme: no tls-alpn-01 challenge pending for %q", hello.ServerName)
			}
			return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*c}, NextProtos: []string{alpnProto}}, nil
		},
	}
}

// firstCertWait bounds how long a handshake waits for the first
// certificate.
const firstCertWait = 30 * time.Second

func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.Certificate(); c != nil {
		return c, nil
	}
	t := time.NewTimer(firstCertWait)
	defer t.Stop()
	select {
	case <-m.ready:
		return m.Certificate(), nil
	case <-hello.Context().Done():
	case <-t.C:
	}
	return nil, fmt.Errorf("acme: no certificate for %s yet", m.cfg.Domain)
}

// HTTPHandler answers the CA's http-01 challenges (GET
// /.well-known/acme-challenge/TOKEN) and passes every other request to
// fallback (nil: 404).
func (m *Manager) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			fallback.ServeHTTP(w, r)
			return
		}
		m.mu.Lock()
		v, ok := m.tokens[r.URL.Path]
		m.mu.Unlock()
		if !ok {
			http.Error(w, "no such challenge", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(v))
	})
}

// RenewAt is when a certificate is renewed: two thirds into its lifetime.
func RenewAt(leaf *x509.Certificate) time.Time {
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
}

// Run gets a certificate unless a valid one was cached, then renews it two
// thirds into each certificate's lifetime, until ctx ends. A failed attempt
// is logged (a warning when its reason is new) and retried after
// Config.Retry. Run returns when ctx ends.
func (m *Manager) Run(ctx context.Context) {
	retry := backoff.New(m.cfg.Retry)
	var client *acme.Client
	for {
		var wait time.Duration
		c := m.Certificate()
		if c != nil {
			wait = time.Until(RenewAt(c.Leaf))
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		if client == nil {
			var err error
			if client, err = m.account(ctx); err != nil {
				client = nil
				if !m.failed(ctx, err, c, retry) {
					return
				}
				continue
			}
		}
		start := time.Now()
		nc, how, err := m.obtain(ctx, client)
		if err != nil {
			if !m.failed(ctx, err, c, retry) {
				return
			}
			continue
		}
		retry.Reset()
		m.mu.Lock()
		m.lastErr = ""
		m.mu.Unlock()
		msg := "acme: certificate obtained"
		if c != nil {
			msg = "acme: certificate renewed"
		}
		m.setCert(nc)
		m.log.Info(msg, append(certAttrs(nc), "challenge", how, "took", time.Since(start).Round(time.Millisecond).String())...)
	}
}

// failed logs err (a warning the first time a reason is seen) and waits
// for the next attempt; false when ctx ended.
func (m *Manager) failed(ctx context.Context, err error, current *tls.Certificate, retry *backoff.Backoff) bool {
	if ctx.Err() != nil {
		return false
	}
	wait := retry.Next()
	if current != nil {
		// Never wait past the end of the certificate being served.
		wait = min(wait, max(time.Until(current.Leaf.NotAfter)/4, time.Second))
	}
	m.mu.Lock()
	repeated := m.lastErr == err.Error()
	m.lastErr = err.Error()
	m.mu.Unlock()
	lvl := slog.LevelWarn
	if repeated {
		lvl = slog.LevelDebug
	}
	attrs := []any{"ca", m.cfg.DirectoryURL, "err", err, "retry_in", wait.Round(time.Second)}
	if current != nil {
		attrs = append(attrs, "serving_until", current.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	m.log.Log(ctx, lvl, "acme: cannot get a certificate", attrs...)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// account returns a client registered with the CA, with the cached account
// key (made on first use).
func (m *Manager) account(ctx context.Context) (*acme.Client, error) {
	key, err := m.accountKey()
	if err != nil {
		return nil, err
	}
	client := &acme.Client{Key: key, DirectoryURL: m.cfg.DirectoryURL, HTTPClient: m.cfg.HTTPClient,
		UserAgent: "parley"}
	acct := &acme.Account{}
	if m.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + m.cfg.Email}
	}
	if _, err := client.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("acme: registering an account with %s: %w", m.cfg.DirectoryURL, err)
	}
	return client, nil
}

// challengeTypes are the challenges to try, in order.
func (m *Manager) challengeTypes() []string {
	if m.cfg.HTTP01 {
		return []string{HTTP01, TLSALPN01}
	}
	return []string{TLSALPN01}
}

// obtain orders a certificate for Domain, answering its authorization with
// each challenge type in turn until one passes, and caches it. how is the
// challenge type that passed ("none" when the CA reused an authorization).
func (m *Manager) obtain(ctx context.Context, client *acme.Client) (c *tls.Certificate, how string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var errs []error
	for _, typ := range m.challengeTypes() {
		order, err := client.AuthorizeOrder(ctx, acme.DomainIDs(m.cfg.Domain))
		if err != nil {
			return nil, "", fmt.Errorf("acme: ordering a certificate: %w", err)
		}
		how = "none"
		if order.Status == acme.StatusPending {
			if err := m.authorize(ctx, client, order, typ); err != nil {
				errs = append(errs, err)
				continue
			}
			how = typ
		}
		if order, err = client.WaitOrder(ctx, order.URI); err != nil {
			return nil, "", fmt.Errorf("acme: waiting for the order: %w", err)
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, "", err
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: m.cfg.Domain}, DNSNames: []string{m.cfg.Domain}}, key)
		if err != nil {
			return nil, "", err
		}
		der, _, err := client.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
		if err != nil {
			return nil, "", fmt.Errorf("acme: finalizing the order: %w", err)
		}
		c, err = m.certificate(der, key)
		if err != nil {
			return nil, "", err
		}
		if err := m.saveCert(c); err != nil {
			m.log.Warn("acme: cannot cache the certificate; a restart will ask the CA again", "err", err)
		}
		return c, how, nil
	}
	return nil, "", errors.Join(errs...)
}

// authorize answers the order's pending authorizations with challenge typ.
func (m *Manager) authorize(ctx context.Context, client *acme.Client, order *acme.Order, typ string) error {
	for _, zurl := range order.AuthzURLs {
		z, err := client.GetAuthorization(ctx, zurl)
		if err != nil {
			return fmt.Errorf("acme: %s: reading the authorization: %w", typ, err)
		}
		if z.Status == acme.StatusValid {
			continue
		}
		var chal *acme.Challenge
		for _, c := range z.Challenges {
			if c.Type == typ {
				chal = c
			}
		}
		if chal == nil {
			return fmt.Errorf("acme: the CA offers no %s challenge for %s", typ, z.Identifier.Value)
		}
		done, err := m.answer(client, chal, z.Identifier.Value)
		if err != nil {
			return err
		}
		_, err = client.Accept(ctx, chal)
		if err == nil {
			_, err = client.WaitAuthorization(ctx, z.URI)
		}
		done()
		if err != nil {
			return fmt.Errorf("acme: %s challenge for %s failed: %w (%s)", typ, z.Identifier.Value, err, challengeHint(typ))
		}
	}
	return nil
}

// challengeHint says what the CA needs to reach for a challenge type.
func challengeHint(typ string) string {
	if typ == HTTP01 {
		return "the CA connects to port 80 of the name: --acme-http must listen there"
	}
	return "the CA connects to port 443 of the name: a TLS listener of this server (--listen, or a supernode's --turn-tls) must be reachable there"
}

// answer makes the challenge's response available and returns the function
// that takes it away.
func (m *Manager) answer(client *acme.Client, chal *acme.Challenge, domain string) (func(), error) {
	domain = strings.ToLower(domain)
	switch chal.Type {
	case HTTP01:
		v, err := client.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, err
		}
		p := client.HTTP01ChallengePath(chal.Token)
		m.mu.Lock()
		m.tokens[p] = v
		m.mu.Unlock()
		return func() {
			m.mu.Lock()
			delete(m.tokens, p)
			m.mu.Unlock()
		}, nil
	case TLSALPN01:
		c, err := client.TLSALPN01ChallengeCert(chal.Token, domain)
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.alpn[domain] = &c
		m.mu.Unlock()
		return func() {
			m.mu.Lock()
			delete(m.alpn, domain)
			m.mu.Unlock()
		}, nil
	}
	return nil, fmt.Errorf("acme: challenge type %s not supported", chal.Type)
}

// certificate builds the TLS certificate from the CA's chain and checks it
// is for Domain and valid now.
func (m *Manager) certificate(der [][]byte, key crypto.Signer) (*tls.Certificate, error) {
	if len(der) == 0 {
		return nil, errors.New("acme: the CA returned no certificate")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, fmt.Errorf("acme: the CA's certificate: %w", err)
	}
	if err := leaf.VerifyHostname(m.cfg.Domain); err != nil {
		return nil, fmt.Errorf("acme: the CA's certificate: %w", err)
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("acme: the CA's certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

// certAttrs are the log attributes naming a certificate.
func certAttrs(c *tls.Certificate) []any {
	return []any{"serial", c.Leaf.SerialNumber.Text(16), "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339Nano),
		"renew_at", RenewAt(c.Leaf).UTC().Format(time.RFC3339Nano), "issuer", c.Leaf.Issuer.CommonName}
}

// The cache: account.key, and DOMAIN.pem (the key, then the chain).
func (m *Manager) accountKey() (crypto.Signer, error) {
	p := filepath.Join(m.dir, "account.key")
	if b, err := os.ReadFile(p); err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("acme: %s: not PEM", p)
		}
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("acme: %s: %w", p, err)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("acme: account key: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeFile(p, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		return nil, fmt.Errorf("acme: account key: %w", err)
	}
	return k, nil
}

func (m *Manager) certPath() string { return filepath.Join(m.dir, m.cfg.Domain+".pem") }

func (m *Manager) saveCert(c *tls.Certificate) error {
	der, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		return err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	for _, d := range c.Certificate {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return writeFile(m.certPath(), b)
}

// loadCert reads the cached certificate; an error when there is none (an
// os.ErrNotExist) or it is not for Domain or expired.
func (m *Manager) loadCert() (*tls.Certificate, error) {
	b, err := os.ReadFile(m.certPath())
	if err != nil {
		return nil, err
	}
	var key crypto.Signer
	var chain [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "EC PRIVATE KEY":
			if key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
				return nil, fmt.Errorf("%s: %w", m.certPath(), err)
			}
		case "CERTIFICATE":
			chain = append(chain, blk.Bytes)
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%s: no key", m.certPath())
	}
	return m.certificate(chain, key)
}

// writeFile writes b to p (mode 0600) through a temporary file, so that p
// is either the old content or the new.
func writeFile(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}
