package cluster

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"flag"

	"github.com/parley/parley/internal/cli"
	"github.com/parley/parley/supernode"
)

// RegisterFlags adds the supernode command's own flags, filling cfg (the
// relay's are the relay command's too, and --login-key, --turn-secret and
// the operator flags are resolved by the command).
func (cfg *SupernodeConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.Var((*HostList)(&cfg.ExternalRelays), "relay", "also offer the standalone relay at `HOST[:PORT]` (sharing the TURN secret; repeatable)")
	fs.StringVar(&cfg.Listen, "listen", ":8081", "listen `ADDR`")
	fs.StringVar(&cfg.PublicAddr, "public-addr", "", "`HOST` clients reach this supernode at (default: the listen host, else 127.0.0.1)")
	fs.StringVar(&cfg.CertFile, "tls-cert", "", "TLS certificate `FILE`")
	fs.StringVar(&cfg.KeyFile, "tls-key", "", "TLS key `FILE`")
	fs.StringVar(&cfg.NodeKeyFile, "node-key", "", "`FILE` keeping this supernode's node key across restarts (made on first use; default: a fresh key each run)")
	fs.Var((*URLList)(&cfg.Seeds), "seed", "client `URL` of another supernode to join the mesh through (repeatable; the login server's list is always used)")
	fs.BoolVar(&cfg.Web, "web", false, "serve the web client at / (and pass its /api/ requests on to the login server)")
	fs.IntVar(&cfg.Limits.MaxSessionsPerUser, "max-sessions-per-user", supernode.DefaultMaxSessionsPerUser, "sessions one user may have attached at once (-1: no cap)")
	fs.IntVar(&cfg.Limits.MaxSessionsPerAddr, "max-sessions-per-addr", supernode.DefaultMaxSessionsPerAddr, "websocket sessions one address may hold at once (-1: no cap)")
	fs.DurationVar(&cfg.Limits.IdleTimeout, "idle-timeout", supernode.DefaultIdleTimeout, "close a session that sends nothing for this long")
	fs.IntVar(&cfg.Limits.MaxAttaching, "max-attaching", supernode.DefaultMaxAttaching, "new connections that may be between upgrade and attach at once; more get 503 and a Retry-After (-1: no cap)")
	fs.Float64Var(&cfg.Limits.AttachRate, "attach-rate", supernode.DefaultAttachRate, "new connections taken a second, a burst of as many; more get 503 and a Retry-After (-1: no cap)")
	fs.Int64Var(&cfg.Limits.ShedMemoryBytes, "shed-memory", 0, "refuse new connections while the Go runtime holds over `BYTES` (default: 80% of GOMEMLIMIT when set, else never; -1: never)")
	fs.DurationVar(&cfg.Limits.RetryAfter, "retry-after", supernode.DefaultRetryAfter, "the least Retry-After a refused connection is told (each gets between it and twice it)")
	fs.Var((*LoginKey)(&cfg.LoginKey), "login-key", "pin the login server's public `KEY` (base64) instead of fetching it at start")
}

// LoginKey is --login-key: a base64 Ed25519 public key.
type LoginKey []byte

func (k *LoginKey) String() string { return base64.StdEncoding.EncodeToString(*k) }
func (k *LoginKey) Set(s string) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return errors.New("not a base64 Ed25519 public key")
	}
	*k = b
	return nil
}

// CheckTLSFlags checks that --tls-cert and --tls-key come together.
func CheckTLSFlags(cert, key string) error {
	if (cert == "") != (key == "") {
		return cli.UsageError{Msg: "--tls-cert and --tls-key go together"}
	}
	return nil
}
