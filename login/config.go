package login

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by [New] to zero Config fields.
const (
	DefaultCredentialTTL       = time.Hour
	DefaultRefreshTTL          = 30 * 24 * time.Hour
	DefaultSupernodeTTL        = 30 * time.Second
	DefaultMaxFailuresPerUser  = 100
	DefaultMaxFailuresPerAddr  = 20
	DefaultFailureWindow       = 5 * time.Minute
	DefaultDialBackInterval    = 10 * time.Minute
	DefaultDialBackTimeout     = 5 * time.Second
	DefaultDialBackWindow      = time.Minute
	DefaultMaxDialBacksPerAddr = 30

	DefaultMaxDevicesPerUser        = 16
	DefaultMailboxQuotaBytes        = 16 << 20
	DefaultMailboxTTL               = 30 * 24 * time.Hour
	DefaultMaxContacts              = 1000
	DefaultMaxContactRequestsPerDay = 50
	DefaultMaxSearchesPerUser       = 30
	DefaultMaxSearchesPerAddr       = 30
	DefaultSearchWindow             = time.Minute

	DefaultMaxStoredFile    = 100 << 20
	DefaultFileQuotaPerUser = 1 << 30
	DefaultFileStoreTTL     = 7 * 24 * time.Hour
	DefaultFileFetchedGrace = 24 * time.Hour

	DefaultMaxFailuresPerAddrUser    = 5
	DefaultMaxRegistrationsPerAddr   = 5
	DefaultRegistrationWindow        = time.Hour
	DefaultMaxRegistrationsPerMinute = 60
	DefaultMaxLookupsPerAddr         = 30
	DefaultLookupWindow              = time.Minute

	// HTTP server settings, used by [Server.HTTPServer] and
	// [Server.LimitListener].
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 30 * time.Second
	DefaultMaxConnsPerAddr   = 64
)

// Config configures a [Server]. The zero value is usable: every zero field
// means the documented default.
type Config struct {
	// DB is the SQLite database file, or a "postgres://" / "postgresql://"
	// URL of a PostgreSQL database that several login servers may share.
	// Default: "login.db" inside DataDir. A file path may not contain '?'.
	DB string
	// DataDir holds the Ed25519 signing key file "login-key" (a raw 32-byte
	// seed, mode 0600, created on first start) and, by default, the database.
	// It is created with mode 0700 if missing. Default: the current directory.
	DataDir string
	// Logger receives operational logs; nil discards them. Passwords, hashes,
	// refresh tokens, credentials and keys are never logged.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CredentialTTL is the validity of an issued credential. Default 1 h.
	CredentialTTL time.Duration
	// RefreshTTL is the validity of a refresh token; each use slides it
	// forward. Default 30 days.
	RefreshTTL time.Duration
	// SupernodeTTL is how long a supernode stays listed after its last
	// heartbeat. Default 30 s.
	SupernodeTTL time.Duration
	// Argon2 are the password hashing parameters for new hashes; each zero
	// field means the default (see [Argon2Params]). Existing hashes are
	// verified with the parameters stored in them and re-hashed with these at
	// the next successful login.
	Argon2 Argon2Params
	// Failed logins and password changes (a wrong password or an unknown
	// user name, counted alike) within FailureWindow are limited per client
	// address, never per user alone, so that guessing limits the guesser's
	// address and cannot lock the real user out:
	//
	// MaxFailuresPerAddr is the limit per client address (the host of the
	// request's RemoteAddr, or the forwarded one from a TrustedProxies front
	// end; IPv6 grouped by /64), whatever the user names. Default 20.
	MaxFailuresPerAddr int
	// MaxFailuresPerAddrUser is the limit per client address and user name.
	// Default 5.
	MaxFailuresPerAddrUser int
	// MaxFailuresPerUser is a per-user ceiling over all addresses that
	// applies only to addresses that have already failed for that user in
	// the window: once reached, such an address gets 429 for that user,
	// while an address that has not failed for the user is still let in (so
	// a distributed attack gets one guess per fresh address, and the real
	// user with the right password from a clean address is never refused).
	// Default 100.
	MaxFailuresPerUser int
	// TrustedProxies are the front ends (a `parley supernode --web` passing
	// the page's /api/ requests on) whose X-Forwarded-For is believed: for a
	// request from one of them, the client address used for rate limits and
	// logs is the last address in X-Forwarded-For (the one the front end
	// appended; anything before it came from the client). Without it, every
	// browser behind a front end shares the front end's limits. Nil: none.
	// The supernode dial-back's own limits always use the direct peer.
	TrustedProxies []netip.Prefix
	// FailureWindow is the sliding window of the failure counts. Default 5 min.
	FailureWindow time.Duration
	// Web, if set, is served at "/" (the web client). Nil: "/" answers 404
	// with a JSON error.
	Web http.Handler

	// DialBackInterval is how long a successful dial-back vouches for an
	// (addr, key) pair: within it, heartbeats signed by that key only refresh
	// the entry; after it, the next heartbeat dials the address back again.
	// Default 10 min.
	DialBackInterval time.Duration
	// DialBackTimeout bounds one dial-back (name lookup, connect, TLS, the
	// identify answer). Default 5 s.
	DialBackTimeout time.Duration
	// DialBackAllow admits IP ranges the dial-back would otherwise refuse.
	// Nil (or empty) refuses loopback, private, link-local, CGNAT,
	// documentation, benchmarking, multicast and the other special-purpose
	// ranges listed at addrpolicy.PeerAllowed, so that a heartbeat cannot make the
	// login server probe its own host or network. Labs and `parley up` pass
	// for example 127.0.0.0/8 or 198.18.0.0/15. Every prefix must be valid.
	DialBackAllow []netip.Prefix
	// DialBackDial opens the dial-back's TCP connection. It is only ever
	// called with an "ip:port" whose IP has passed the DialBackAllow check
	// (never with a host name, so DNS rebinding cannot swap the address).
	// Nil: a net.Dialer bounded by DialBackTimeout. Tests point it at
	// httptest servers.
	DialBackDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialBackLookup resolves a dial-back host name to IP addresses. Nil:
	// net.DefaultResolver.LookupNetIP(ctx, "ip", host).
	DialBackLookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// DialBackTLS configures TLS for wss:// dial-backs (for example RootCAs
	// for a lab CA). Nil: the system roots. The server name is always the
	// address's host.
	DialBackTLS *tls.Config
	// MaxDialBacksPerAddr is the number of dial-backs a client address (as
	// for MaxFailuresPerAddr) may cause within DialBackWindow; beyond it
	// heartbeats that need a dial-back get 429. Heartbeats that only refresh
	// a verified entry do not count. Default 30.
	MaxDialBacksPerAddr int
	// DialBackWindow is the sliding window of MaxDialBacksPerAddr. Default
	// 1 min.
	DialBackWindow time.Duration

	// MaxDevicesPerUser caps a user's registered devices; registering one
	// more drops the least recently seen (and its mailbox). Default 16.
	MaxDevicesPerUser int
	// MailboxQuotaBytes caps the blob bytes waiting in one device's mailbox;
	// a post that would exceed it is refused whole with 507. Default 16 MiB.
	MailboxQuotaBytes int
	// MailboxTTL is how long an item waits in a mailbox before the janitor
	// deletes it unread. Default 30 days.
	MailboxTTL time.Duration
	// MaxContacts caps a user's contact entries (accepted, requested and
	// pending together); beyond it requests get 507. Default 1000.
	MaxContacts int
	// MaxContactRequestsPerDay caps the new contact requests a user may make
	// in a sliding 24 h (counted per server process); beyond it 429. Default
	// 50.
	MaxContactRequestsPerDay int
	// MaxSearchesPerUser and MaxSearchesPerAddr cap user searches per user
	// and per client address (as for MaxFailuresPerAddr) within
	// SearchWindow; beyond them 429. Defaults 30 and 30.
	MaxSearchesPerUser int
	MaxSearchesPerAddr int
	// SearchWindow is the sliding window of the search limits. Default
	// 1 min.
	SearchWindow time.Duration

	// The file store (POST /api/v1/files and below, docs/login.md): file
	// chunks sealed end to end, left for offline recipients. It lives in
	// the database (every login server sharing a PostgreSQL database sees
	// it), so a stored file costs its size in database rows.
	//
	// MaxStoredFile caps one stored file's size in bytes; a larger one is
	// refused with 413. Default 100 MiB.
	MaxStoredFile int64
	// FileQuotaPerUser caps the bytes of one user's stored files together
	// (those not yet deleted or expired); a file that would pass it is
	// refused with 507 before anything is stored. Default 1 GiB.
	FileQuotaPerUser int64
	// FileStoreTTL is how long a stored file lives after its creation
	// before the janitor deletes it, delivered or not. Default 7 days.
	FileStoreTTL time.Duration
	// FileFetchedGrace is how long a stored file stays once every
	// recipient has taken it (a device of theirs fetched it and deleted
	// their claim), so that each recipient's other devices can fetch it
	// too; then the janitor deletes it. Default 24 hours.
	FileFetchedGrace time.Duration

	// MaxRegistrationsPerAddr caps the registration attempts (valid name and
	// password length, taken names included) per client address within
	// RegistrationWindow; beyond it 429, before any password hashing.
	// Default 5.
	MaxRegistrationsPerAddr int
	// RegistrationWindow is the sliding window of MaxRegistrationsPerAddr.
	// Default 1 h.
	RegistrationWindow time.Duration
	// MaxRegistrationsPerMinute caps registration attempts from all
	// addresses together within a sliding minute (each costs an argon2id
	// hash); beyond it 429. Default 60.
	MaxRegistrationsPerMinute int
	// MaxLookupsPerAddr caps name lookups (GET /api/v1/users/{name}) per
	// client address within LookupWindow; beyond it 429. Default 30.
	MaxLookupsPerAddr int
	// LookupWindow is the sliding window of MaxLookupsPerAddr. Default
	// 1 min.
	LookupWindow time.Duration

	// HTTP server settings. The login server does not listen itself: the
	// program serving [Server.Handler] should build its http.Server with
	// [Server.HTTPServer] (which applies these) and wrap its listener with
	// [Server.LimitListener].
	//
	// ReadHeaderTimeout bounds reading a request's headers. Default 10 s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (a
	// mailbox post is up to 8 MiB). Default 30 s.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of the answer (the API has no long polls; a login may wait for a
	// hashing slot, a heartbeat for a dial-back). Default 60 s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long. Default
	// 30 s.
	IdleTimeout time.Duration
	// MaxConnsPerAddr caps concurrent connections per remote IP (IPv6 per
	// /64) at the listener; a connection beyond it is closed at once.
	// TrustedProxies are exempt (a front end carries many clients).
	// Default 64.
	MaxConnsPerAddr int

	// Metrics, when set, receives the login server's Prometheus metrics
	// (parley_login_…, see docs/operations.md); Close unregisters them.
	// nil: they are counted but not exported.
	Metrics prometheus.Registerer
}

// Argon2Params are argon2id parameters. Each zero field means its default,
// which are the OWASP recommendation: Time 2, Memory 19456 KiB (19 MiB),
// Threads 1, SaltLen 16, KeyLen 32.
type Argon2Params struct {
	Time    uint32 // passes over memory; default 2
	Memory  uint32 // KiB; default 19456
	Threads uint8  // lanes; default 1
	SaltLen uint32 // bytes; default 16
	KeyLen  uint32 // bytes of derived key; default 32
}

// withDefaults returns p with zero fields replaced by the defaults.
func (p Argon2Params) withDefaults() Argon2Params {
	if p.Time == 0 {
		p.Time = 2
	}
	if p.Memory == 0 {
		p.Memory = 19 * 1024
	}
	if p.Threads == 0 {
		p.Threads = 1
	}
	if p.SaltLen == 0 {
		p.SaltLen = 16
	}
	if p.KeyLen == 0 {
		p.KeyLen = 32
	}
	return p
}

// Bounds on argon2id parameters, for configured and stored values alike (a
// corrupt row must not make the server allocate without bound).
const (
	maxArgonTime   = 64
	maxArgonMemory = 4 << 20 // KiB = 4 GiB
	minSaltLen     = 8
	maxSaltLen     = 64
	minKeyLen      = 16
	maxKeyLen      = 128
)

func (p Argon2Params) check() error {
	switch {
	case p.Time < 1 || p.Time > maxArgonTime:
		return fmt.Errorf("argon2 time %d out of range 1..%d", p.Time, maxArgonTime)
	case p.Threads < 1:
		return fmt.Errorf("argon2 threads must be at least 1")
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgonMemory:
		return fmt.Errorf("argon2 memory %d KiB out of range %d..%d", p.Memory, 8*uint32(p.Threads), maxArgonMemory)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("argon2 salt length %d out of range %d..%d", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("argon2 key length %d out of range %d..%d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// withDefaults returns cfg with every zero field replaced by its default, or
// an error wrapping ErrBadConfig for negative values.
func (cfg Config) withDefaults() (Config, error) {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"CredentialTTL", &cfg.CredentialTTL, DefaultCredentialTTL},
		{"RefreshTTL", &cfg.RefreshTTL, DefaultRefreshTTL},
		{"SupernodeTTL", &cfg.SupernodeTTL, DefaultSupernodeTTL},
		{"FailureWindow", &cfg.FailureWindow, DefaultFailureWindow},
		{"DialBackInterval", &cfg.DialBackInterval, DefaultDialBackInterval},
		{"DialBackTimeout", &cfg.DialBackTimeout, DefaultDialBackTimeout},
		{"DialBackWindow", &cfg.DialBackWindow, DefaultDialBackWindow},
		{"MailboxTTL", &cfg.MailboxTTL, DefaultMailboxTTL},
		{"FileStoreTTL", &cfg.FileStoreTTL, DefaultFileStoreTTL},
		{"FileFetchedGrace", &cfg.FileFetchedGrace, DefaultFileFetchedGrace},
		{"SearchWindow", &cfg.SearchWindow, DefaultSearchWindow},
		{"RegistrationWindow", &cfg.RegistrationWindow, DefaultRegistrationWindow},
		{"LookupWindow", &cfg.LookupWindow, DefaultLookupWindow},
		{"ReadHeaderTimeout", &cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{"ReadTimeout", &cfg.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", &cfg.WriteTimeout, DefaultWriteTimeout},
		{"IdleTimeout", &cfg.IdleTimeout, DefaultIdleTimeout},
	} {
		if *d.v < 0 {
			return cfg, fmt.Errorf("%w: %s is negative", ErrBadConfig, d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for _, d := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxFailuresPerUser", &cfg.MaxFailuresPerUser, DefaultMaxFailuresPerUser},
		{"MaxFailuresPerAddr", &cfg.MaxFailuresPerAddr, DefaultMaxFailuresPerAddr},
		{"MaxFailuresPerAddrUser", &cfg.MaxFailuresPerAddrUser, DefaultMaxFailuresPerAddrUser},
		{"MaxDialBacksPerAddr", &cfg.MaxDialBacksPerAddr, DefaultMaxDialBacksPerAddr},
		{"MaxDevicesPerUser", &cfg.MaxDevicesPerUser, DefaultMaxDevicesPerUser},
		{"MailboxQuotaBytes", &cfg.MailboxQuotaBytes, DefaultMailboxQuotaBytes},
		{"MaxContacts", &cfg.MaxContacts, DefaultMaxContacts},
		{"MaxContactRequestsPerDay", &cfg.MaxContactRequestsPerDay, DefaultMaxContactRequestsPerDay},
		{"MaxSearchesPerUser", &cfg.MaxSearchesPerUser, DefaultMaxSearchesPerUser},
		{"MaxSearchesPerAddr", &cfg.MaxSearchesPerAddr, DefaultMaxSearchesPerAddr},
		{"MaxRegistrationsPerAddr", &cfg.MaxRegistrationsPerAddr, DefaultMaxRegistrationsPerAddr},
		{"MaxRegistrationsPerMinute", &cfg.MaxRegistrationsPerMinute, DefaultMaxRegistrationsPerMinute},
		{"MaxLookupsPerAddr", &cfg.MaxLookupsPerAddr, DefaultMaxLookupsPerAddr},
		{"MaxConnsPerAddr", &cfg.MaxConnsPerAddr, DefaultMaxConnsPerAddr},
	} {
		if *d.v < 0 {
			return cfg, fmt.Errorf("%w: %s is negative", ErrBadConfig, d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for _, d := range []struct {
		name string
		v    *int64
		def  int64
	}{
		{"MaxStoredFile", &cfg.MaxStoredFile, DefaultMaxStoredFile},
		{"FileQuotaPerUser", &cfg.FileQuotaPerUser, DefaultFileQuotaPerUser},
	} {
		if *d.v < 0 {
			return cfg, fmt.Errorf("%w: %s is negative", ErrBadConfig, d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	cfg.Argon2 = cfg.Argon2.withDefaults()
	if err := cfg.Argon2.check(); err != nil {
		return cfg, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "."
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, p := range cfg.DialBackAllow {
		if !p.IsValid() {
			return cfg, fmt.Errorf("%w: DialBackAllow holds an invalid prefix", ErrBadConfig)
		}
	}
	for _, p := range cfg.TrustedProxies {
		if !p.IsValid() {
			return cfg, fmt.Errorf("%w: TrustedProxies holds an invalid prefix", ErrBadConfig)
		}
	}
	if cfg.DialBackDial == nil {
		d := &net.Dialer{Timeout: cfg.DialBackTimeout}
		cfg.DialBackDial = d.DialContext
	}
	if cfg.DialBackLookup == nil {
		cfg.DialBackLookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return cfg, nil
}
