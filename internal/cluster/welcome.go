package cluster

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// PrintWelcome tells the user of `parley up` what runs where and how to try
// it: the commands name this executable, relative to the working directory
// when it is below it; data is the data directory.
func (n Network) PrintWelcome(w io.Writer, data string) {
	self, _ := os.Executable()
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, self); err == nil && !strings.HasPrefix(rel, "..") {
			self = "./" + rel
		}
	}
	fmt.Fprintf(w, `Parley is up.
  login server and web page  %[1]s/
  supernode                  ws://%[2]s/v1/ws
  echo user                  echo (answers every call and plays back what it hears)

Call echo from another terminal:
  export PARLEY_LOGIN=%[1]s PARLEY_HOME=/tmp/parley-alice PARLEY_PASSWORD=choose-a-password
  %[3]s register alice
  %[3]s call echo --play YOUR.wav --record echoed.wav --json

Ctrl-C stops the network; accounts stay in %[4]s.
`, n.LoginURL, n.SupernodeAddr, self, data)
}

// DBHasPassword reports whether a PostgreSQL URL or key=value DSN carries a
// password.
func DBHasPassword(dsn string) bool {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		_, set := u.User.Password()
		return set || u.Query().Has("password")
	}
	for _, f := range strings.Fields(dsn) {
		if strings.HasPrefix(f, "password=") {
			return true
		}
	}
	return false
}
