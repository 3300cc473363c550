package login

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/internal/logthrottle"
	"github.com/parley/parley/internal/metrics"
	"github.com/parley/parley/wire/loginapi"
)

// Limits of the HTTP API.
const (
	MaxBodyBytes     = 64 << 10 // request bodies
	MinPasswordBytes = 8
	MaxPasswordBytes = 1024
	MaxSupernodeAddr = 256  // bytes of a supernode URL
	MaxSupernodes    = 1000 // live supernode entries
	// MaxHeaderBytes caps request headers ([Server.HTTPServer]).
	MaxHeaderBytes = 32 << 10
)

// dummyPassword is hashed once at start: login runs a verification against
// that hash for an unknown user, so that an unknown name costs the same
// time as a wrong password.
const dummyPassword = "parley-dummy-password-never-matches"

const (
	// maxDialBackIPs caps the addresses one dial-back tries (a host name
	// resolving to many addresses must not multiply the connections).
	maxDialBackIPs = 4
	// maxConcurrentDialBacks caps dial-backs in flight; more wait.
	maxConcurrentDialBacks = 32
)

const (
	refreshTokenBytes = 32
	refreshKeep       = 32 // newest refresh tokens kept per user
	keyFileName       = "login-key"
	janitorInterval   = time.Minute
	// contactRequestWindow is the window of MaxContactRequestsPerDay.
	contactRequestWindow = 24 * time.Hour
)

// refreshEncoding encodes refresh tokens: base64url without padding, strict
// (one encoding per token).
func refreshEncoding() *base64.Encoding { return base64.RawURLEncoding.Strict() }

// Server is the login server: accounts, credentials, refresh tokens and the
// supernode bootstrap list. Serve [Server.Handler] with an http.Server; shut
// that down before calling [Server.Close].
type Server struct {
	cfg Config
	log *slog.Logger
	// throttle holds back identical log records beyond 10 a minute
	// (internal/logthrottle); Close reports the counts still held.
	throttle *logthrottle.Handler
	now      func() time.Time
	st       store
	priv     ed25519.PrivateKey
	pub      ed25519.PublicKey
	// lim counts failed password checks; dummyHash is verified against for
	// unknown users.
	lim       *failureLimiter
	dummyHash string
	// regLim counts registrations per client address, regAllLim all of them
	// (one key) per minute; lookupLim counts name lookups per address.
	regLim    *limiter
	regAllLim *limiter
	lookupLim *limiter
	// dialLim counts dial-backs per client address; dialSem bounds those in
	// flight.
	dialLim *limiter
	dialSem chan struct{}
	// searchLim counts searches per user and per client address;
	// requestLim counts new contact requests per user (keyed like an
	// address).
	searchLim  *limiter
	requestLim *limiter
	// hashSem bounds concurrent argon2 computations (each takes
	// Config.Argon2.Memory KiB) to the number of CPUs.
	hashSem chan struct{}
	// hashes counts argon2 computations (tests).
	hashes atomic.Int64
	// m are the Prometheus metrics, unregister takes them out of
	// Config.Metrics; certWarned holds the supernode certificate problems
	// already logged (each is logged once, see dialback.go).
	m          *loginMetrics
	unregister func()
	certWarned certWarnings

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New opens (or creates) the store and the signing key and starts the
// server's janitor. The returned Server must be closed with [Server.Close].
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("login: new: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("login: new: data dir: %w", err)
	}
	if cfg.DB == "" {
		cfg.DB = filepath.Join(cfg.DataDir, "login.db")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// A failure that repeats (a database down, a flood of refused requests)
	// must not fill the disk: identical records beyond 10 a minute are
	// only counted.
	throttle := logthrottle.New(log.Handler(), logthrottle.Options{})
	log = slog.New(throttle).With("component", "login")
	priv, created, err := loadOrCreateKey(cfg.DataDir, log)
	if err != nil {
		return nil, fmt.Errorf("login: new: signing key: %w", err)
	}
	var st *sqlStore
	if isPostgres(cfg.DB) {
		st, err = openPostgres(context.Background(), cfg.DB)
	} else {
		st, err = openSQLite(context.Background(), cfg.DB)
	}
	if err != nil {
		return nil, fmt.Errorf("login: new: open %s: %w", redactDSN(cfg.DB), err)
	}
	s := &Server{
		cfg:        cfg,
		throttle:   throttle,
		log:        log,
		now:        cfg.Now,
		st:         st,
		priv:       priv,
		pub:        priv.Public().(ed25519.PublicKey),
		lim:        newFailureLimiter(cfg.FailureWindow, cfg.MaxFailuresPerAddr, cfg.MaxFailuresPerAddrUser, cfg.MaxFailuresPerUser),
		regLim:     newLimiter(cfg.RegistrationWindow, 0, cfg.MaxRegistrationsPerAddr),
		regAllLim:  newLimiter(time.Minute, 0, cfg.MaxRegistrationsPerMinute),
		lookupLim:  newLimiter(cfg.LookupWindow, 0, cfg.MaxLookupsPerAddr),
		dialLim:    newLimiter(cfg.DialBackWindow, 0, cfg.MaxDialBacksPerAddr),
		dialSem:    make(chan struct{}, maxConcurrentDialBacks),
		searchLim:  newLimiter(cfg.SearchWindow, cfg.MaxSearchesPerUser, cfg.MaxSearchesPerAddr),
		requestLim: newLimiter(contactRequestWindow, 0, cfg.MaxContactRequestsPerDay),
		hashSem:    make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
	}
	if s.dummyHash, err = hashPassword(dummyPassword, cfg.Argon2); err != nil {
		st.close()
		return nil, fmt.Errorf("login: new: %w", err)
	}
	s.m = newLoginMetrics(s)
	if s.unregister, err = metrics.Register(cfg.Metrics, s.m.all...); err != nil {
		st.close()
		return nil, fmt.Errorf("login: new: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.janitor()
	log.Info("login database and signing key loaded", "db", redactDSN(cfg.DB), "key_created", created,
		"login_key", base64.StdEncoding.EncodeToString(s.pub))
	return s, nil
}

// PublicKey returns the key that verifies the credentials this server issues.
func (s *Server) PublicKey() ed25519.PublicKey { return s.pub }

// Close stops the janitor, waits for it and closes the database. Requests
// still arriving afterwards get 503. Close is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.cancel()
		s.wg.Wait()
		s.unregister()
		if err := s.st.close(); err != nil {
			s.closeErr = fmt.Errorf("login: close: %w", err)
		}
		s.throttle.Close()
	})
	return s.closeErr
}

// janitor periodically deletes expired refresh tokens, stale supernodes,
// expired mailbox items and stored files, and old rate-limit counts. It
// exits when Close cancels s.ctx.
func (s *Server) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.prune(s.ctx)
		}
	}
}

func (s *Server) prune(ctx context.Context) {
	now := s.now()
	s.lim.prune(now)
	s.regLim.prune(now)
	s.regAllLim.prune(now)
	s.lookupLim.prune(now)
	s.dialLim.prune(now)
	s.searchLim.prune(now)
	s.requestLim.prune(now)
	// A revocation outlives every refresh token and credential its device
	// held (none can be renewed meanwhile); then it can go.
	revokedCutoff := now.Add(-s.cfg.RefreshTTL - s.cfg.CredentialTTL)
	if err := s.st.prune(ctx, now, now.Add(-s.cfg.SupernodeTTL), revokedCutoff); err != nil && ctx.Err() == nil {
		s.log.Warn("prune failed", "err", err)
	}
	if n, err := s.st.pruneMailbox(ctx, now.Add(-s.cfg.MailboxTTL)); err != nil && ctx.Err() == nil {
		s.log.Warn("mailbox prune failed", "err", err)
	} else if n > 0 {
		s.log.Info("expired mailbox items deleted", "count", n)
	}
	if n, bytes, err := s.st.pruneFiles(ctx, now.Add(-s.cfg.FileStoreTTL), now.Add(-s.cfg.FileFetchedGrace)); err != nil && ctx.Err() == nil {
		s.log.Warn("stored file prune failed", "err", err)
	} else if n > 0 {
		s.log.Info("expired stored files deleted", "count", n, "bytes", bytes)
	}
}

// loadOrCreateKey reads the Ed25519 seed in dir/login-key, creating it (mode
// 0600) if it does not exist.
func loadOrCreateKey(dir string, log *slog.Logger) (ed25519.PrivateKey, bool, error) {
	path := filepath.Join(dir, keyFileName)
	seed, err := os.ReadFile(path)
	if err == nil {
		if len(seed) != ed25519.SeedSize {
			return nil, false, fmt.Errorf("%s: %d bytes, want %d: %w", path, len(seed), ed25519.SeedSize, ErrBadKeyFile)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("signing key file is readable by others; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
		}
		return ed25519.NewKeyFromSeed(seed), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	seed = make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, false, err
	}
	// Write a temporary file and hard-link it into place: the key file either
	// does not exist or is complete, and two servers starting at once agree
	// on one key.
	tmp, err := os.CreateTemp(dir, ".login-key-*")
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if _, err := tmp.Write(seed); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if err := tmp.Close(); err != nil {
		return nil, false, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadOrCreateKey(dir, log)
		}
		return nil, false, err
	}
	return ed25519.NewKeyFromSeed(seed), true, nil
}

// withHashSlot runs f while holding one of the argon2 slots.
func (s *Server) withHashSlot(ctx context.Context, f func()) error {
	select {
	case s.hashSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashSem }()
	s.hashes.Add(1)
	f()
	return nil
}

func (s *Server) hash(ctx context.Context, password string) (string, error) {
	var h string
	var herr error
	if err := s.withHashSlot(ctx, func() { h, herr = hashPassword(password, s.cfg.Argon2) }); err != nil {
		return "", err
	}
	return h, herr
}

func (s *Server) verify(ctx context.Context, password, encoded string) (ok, rehash bool, err error) {
	if serr := s.withHashSlot(ctx, func() { ok, rehash, err = verifyPassword(password, encoded, s.cfg.Argon2) }); serr != nil {
		return false, false, serr
	}
	return ok, rehash, err
}

// authFailure describes why checkPassword refused.
type authFailure struct {
	status     int
	err        error         // sentinel
	retryAfter time.Duration // for ErrRateLimited
}

// badLogin is the answer to a wrong password and to an unknown user alike,
// so that login does not reveal which names exist.
var badLogin = &authFailure{status: 401, err: errBadLogin}

// errBadLogin is the message of [badLogin]; the client maps the 401 to
// loginapi.ErrWrongPassword.
var errBadLogin = errors.New("wrong user name or password")

// checkPassword applies the failure limits and checks user's password. On
// success it returns the stored hash. On refusal it returns a non-nil
// *authFailure; on a server-side failure a non-nil error. An unknown user is
// refused exactly like a wrong password (same answer, same counts, and a
// verification against a dummy hash so that it takes as long).
func (s *Server) checkPassword(ctx context.Context, op, user, password, addr string) (string, *authFailure, error) {
	start := s.now()
	if wait := s.lim.begin(user, addr, start); wait > 0 {
		s.m.rateLimited.WithLabelValues(limitLogins).Inc()
		s.log.Warn(op+" rate limited", "user", user, "addr", addr, "retry_after_s", retrySeconds(wait))
		return "", &authFailure{status: 429, err: loginapi.ErrRateLimited, retryAfter: wait}, nil
	}
	stored, err := s.st.passwordHash(ctx, user)
	unknown := errors.Is(err, loginapi.ErrUnknownUser)
	if unknown {
		stored = s.dummyHash
	} else if err != nil {
		s.lim.abandon(user, addr, start)
		return "", nil, err
	}
	ok, rehash, err := s.verify(ctx, password, stored)
	if err != nil {
		s.lim.abandon(user, addr, start)
		return "", nil, err
	}
	if unknown || !ok {
		reason := "wrong password"
		if unknown {
			reason = "unknown user"
		}
		s.log.Info(op+" refused", "user", user, "addr", addr, "reason", reason)
		return "", badLogin, nil
	}
	s.lim.succeeded(user, addr, start)
	if rehash && op == "login" {
		// Upgrade the stored hash to the configured parameters. A failure
		// here is not the user's problem; the old hash keeps working.
		if h, err := s.hash(ctx, password); err == nil {
			if err := s.st.replacePasswordHash(ctx, user, stored, h, false); err != nil && !errors.Is(err, loginapi.ErrWrongPassword) {
				s.log.Warn("rehash failed", "user", user, "err", err)
			} else if err == nil {
				s.log.Info("password rehashed with current parameters", "user", user)
				stored = h
			}
		}
	}
	return stored, nil, nil
}

// issue signs a credential for user and pub and builds the login response.
func (s *Server) issue(ctx context.Context, user string, pub ed25519.PublicKey, refresh string, refreshExp time.Time) (*loginapi.LoginResponse, error) {
	now := s.now()
	exp := now.Add(s.cfg.CredentialTTL)
	tok, err := identity.Issue(s.priv, identity.Credential{
		User:      user,
		PublicKey: pub,
		NotBefore: now.Unix(),
		Expires:   exp.Unix(),
	})
	if err != nil {
		return nil, err
	}
	s.m.credentials.Inc()
	sns, err := s.st.supernodes(ctx, now.Add(-s.cfg.SupernodeTTL), MaxSupernodes)
	if err != nil {
		return nil, err
	}
	return &loginapi.LoginResponse{
		User:           user,
		Credential:     tok,
		Expires:        exp.Unix(),
		RefreshToken:   refresh,
		RefreshExpires: refreshExp.Unix(),
		LoginKey:       s.pub,
		Supernodes:     sns,
	}, nil
}

// newRefreshToken returns a fresh token and the hash stored for it.
func newRefreshToken() (string, []byte, error) {
	b := make([]byte, refreshTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	h := sha256.Sum256(b)
	return refreshEncoding().EncodeToString(b), h[:], nil
}

// refreshHash decodes a refresh token and returns its stored hash.
func refreshHash(tok string) ([]byte, bool) {
	if len(tok) != refreshEncoding().EncodedLen(refreshTokenBytes) {
		return nil, false
	}
	b, err := refreshEncoding().DecodeString(tok)
	if err != nil || len(b) != refreshTokenBytes {
		return nil, false
	}
	h := sha256.Sum256(b)
	return h[:], true
}
