package cluster

import (
	"flag"

	"github.com/parley/parley/internal/cli"
	"github.com/parley/parley/login"
)

// RegisterFlags adds the login-server command's own flags, filling cfg;
// dbDefault is --db's default (the command passes PARLEY_DB). The operator
// flags are OpsFlags'.
func (cfg *LoginConfig) RegisterFlags(fs *flag.FlagSet, dbDefault string) {
	l := &cfg.Login
	fs.StringVar(&cfg.Listen, "listen", ":8080", "listen `ADDR`")
	fs.StringVar(&l.DataDir, "data", "./parley-data", "`DIR` for the signing key (and the SQLite database by default)")
	fs.StringVar(&l.DB, "db", dbDefault, "SQLite `PATH_OR_DSN` (default DIR/login.db), or a postgres:// URL shared by several login servers, without its password (env PARLEY_DB; the password from PGPASSWORD or ~/.pgpass)")
	fs.StringVar(&cfg.CertFile, "tls-cert", "", "TLS certificate `FILE`")
	fs.StringVar(&cfg.KeyFile, "tls-key", "", "TLS key `FILE`")
	fs.BoolVar(&cfg.Web, "web", false, "serve the web client at /")
	fs.Var((*cli.CIDRs)(&l.DialBackAllow), "supernode-allow", "`CIDR` the login server may dial supernodes back in although it is loopback, private or special (labs; repeatable)")
	fs.IntVar(&l.MaxRegistrationsPerAddr, "max-registrations-per-addr", login.DefaultMaxRegistrationsPerAddr, "accounts one address may create an hour")
	fs.IntVar(&l.MaxRegistrationsPerMinute, "max-registrations-per-minute", login.DefaultMaxRegistrationsPerMinute, "accounts all addresses together may create a minute")
	fs.IntVar(&l.MaxLookupsPerAddr, "max-lookups-per-addr", login.DefaultMaxLookupsPerAddr, "user name lookups one address may make a minute")
	fs.IntVar(&l.MaxFailuresPerAddr, "max-failures-per-addr", login.DefaultMaxFailuresPerAddr, "failed logins one address may make in 5 minutes")
	fs.IntVar(&l.MaxFailuresPerAddrUser, "max-failures-per-addr-user", login.DefaultMaxFailuresPerAddrUser, "failed logins one address may make for one user in 5 minutes")
	fs.IntVar(&l.MaxConnsPerAddr, "max-conns-per-addr", login.DefaultMaxConnsPerAddr, "connections one address may hold at once")
	fs.Var((*cli.CIDRs)(&l.TrustedProxies), "trusted-proxy", "`CIDR` of front ends (supernodes with --web) whose X-Forwarded-For names the browser, for rate limits (repeatable)")
}
