package login

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/parley/parley/wire/loginapi"
)

// A real PostgreSQL server for the tests in this file: one cluster per test
// binary, started as the postgres system user in a temporary directory (it
// refuses to run as root), on a free port of 127.0.0.1; a fresh database per
// test. Without root or PostgreSQL the tests skip, except under CI (CI=true),
// where that is a failure.
var pg struct {
	once sync.Once
	dsn  string // of the cluster's "postgres" database
	dir  string
	err  error
	n    int
	mu   sync.Mutex
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg.dir != "" {
		pgCtl("stop", "-m", "immediate")
		os.RemoveAll(pg.dir)
	}
	os.Exit(code)
}

func pgBin(name string) string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) == 0 {
		return ""
	}
	return matches[len(matches)-1]
}

func pgCtl(args ...string) error {
	all := append([]string{"-u", "postgres", "--", pgBin("pg_ctl"), "-D", filepath.Join(pg.dir, "data")}, args...)
	out, err := exec.Command("runuser", all...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func startCluster() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (to run PostgreSQL as the postgres user)")
	}
	if pgBin("initdb") == "" {
		return errors.New("PostgreSQL is not installed (scripts/deps.sh installs it)")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if pg.dir, err = os.MkdirTemp("", "parley-pg-"); err != nil {
		return err
	}
	if err := os.Chown(pg.dir, uid, gid); err != nil {
		return err
	}
	out, err := exec.Command("runuser", "-u", "postgres", "--", pgBin("initdb"),
		"-D", filepath.Join(pg.dir, "data"), "-U", "parley", "--auth=trust", "-E", "UTF8").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off", pg.dir, port)
	if err := pgCtl("-o", opts, "-l", filepath.Join(pg.dir, "log"), "-w", "start"); err != nil {
		return err
	}
	pg.dsn = fmt.Sprintf("postgres://parley@127.0.0.1:%d/postgres?sslmode=disable", port)
	return nil
}

// newPostgresDB returns the DSN of a fresh database on the test cluster.
func newPostgresDB(t *testing.T) string {
	t.Helper()
	pg.once.Do(func() { pg.err = startCluster() })
	if pg.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL: %v (CI=true: the PostgreSQL tests must run)", pg.err)
		}
		t.Skipf("skipping PostgreSQL test: %v", pg.err)
	}
	pg.mu.Lock()
	pg.n++
	name := fmt.Sprintf("t%d", pg.n)
	pg.mu.Unlock()
	db, err := sql.Open("pgx", pg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(pg.dsn, "/postgres?", "/"+name+"?", 1)
}

// eachStore runs f twice: as subtest "sqlite" with db "" (the default file in
// the data dir) and as "postgres" with the DSN of a fresh PostgreSQL database.
func eachStore(t *testing.T, f func(t *testing.T, db string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { f(t, "") })
	t.Run("postgres", func(t *testing.T) { f(t, newPostgresDB(t)) })
}

// TestPostgresConcurrentServers: several login servers on one database race
// for the last place in the supernode list and log one user in at once; the
// limits hold as they do with a single SQLite writer.
func TestPostgresConcurrentServers(t *testing.T) {
	dsn := newPostgresDB(t)
	dir := t.TempDir()
	clock := newClock()
	var envs []*env
	for range 3 {
		envs = append(envs, newEnv(t, Config{DB: dsn, DataDir: dir, Now: clock.Now, MaxFailuresPerUser: 1000, MaxFailuresPerAddr: 1000, MaxFailuresPerAddrUser: 1000,
			MaxDialBacksPerAddr: 2 * MaxSupernodes}))
	}
	ctx := t.Context()
	for i := range MaxSupernodes - 1 {
		if err := envs[i%3].hb(fmt.Sprintf("ws://10.0.%d.%d:7000/v1/ws", i/256, i%256)); err != nil {
			t.Fatal(err)
		}
	}
	// One place left, 12 new supernodes at once on 3 servers: exactly one wins.
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Go(func() {
			err := envs[i%3].hb(fmt.Sprintf("ws://10.9.9.%d:7000/v1/ws", i))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, loginapi.ErrSupernodeListFull):
			t.Errorf("heartbeat: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d new supernodes took the last place, want 1", ok)
	}
	for _, e := range envs {
		if list, err := e.cl.Supernodes(ctx); err != nil || len(list) != MaxSupernodes {
			t.Errorf("list: %d entries, %v; want %d", len(list), err, MaxSupernodes)
		}
	}

	// Simultaneous logins of one user on all servers keep refreshKeep tokens.
	if err := envs[0].cl.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	errs = make(chan error, 2*refreshKeep)
	for i := range 2 * refreshKeep {
		wg.Go(func() {
			_, err := envs[i%3].cl.Login(ctx, "alice", "password1", pub)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("login: %v", err)
		}
	}
	var n int
	if err := envs[1].srv.st.(*sqlStore).db.QueryRow(`SELECT COUNT(*) FROM refresh_tokens`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != refreshKeep {
		t.Errorf("stored tokens after concurrent logins: %d, want %d", n, refreshKeep)
	}
}

// TestPostgresSharedByTwoServers: two login servers on one PostgreSQL database
// behave as one: an account made on one logs in on the other, a password change
// on one revokes refresh tokens issued by the other, supernodes heartbeating to
// one are listed by the other, and a restart keeps everything.
func TestPostgresSharedByTwoServers(t *testing.T) {
	dsn := newPostgresDB(t)
	// A password in the DSN (ignored by trust auth) must never reach the logs.
	dsn = strings.Replace(dsn, "parley@", "parley:hunter2-db-password@", 1)
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir() // both share the signing key, as servers behind one name must
	nodes := newNodeNet(t)
	start := func() (*Server, *loginapi.Client) {
		cfg := Config{DB: dsn, DataDir: dir, Logger: logger, Argon2: Argon2Params{Time: 1, Memory: 1024, Threads: 1}}
		nodes.configure(&cfg)
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(s.Handler())
		t.Cleanup(func() { hs.Close(); s.Close() })
		return s, loginapi.NewClient(hs.URL, nil)
	}
	sa, a := start()
	_, b := start()
	ctx := context.Background()
	pub, _, _ := ed25519.GenerateKey(nil)

	if err := a.Register(ctx, "alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, "alice", "other-password"); !errors.Is(err, loginapi.ErrUserExists) {
		t.Fatalf("register twice across servers: %v, want ErrUserExists", err)
	}
	onA, err := a.Login(ctx, "alice", "alice-password", pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Login(ctx, "alice", "alice-password", pub); err != nil {
		t.Fatalf("login on the other server: %v", err)
	}
	if _, err := b.Refresh(ctx, "alice", onA.RefreshToken, pub); err != nil {
		t.Fatalf("refresh on the other server: %v", err)
	}
	if err := b.ChangePassword(ctx, "alice", "alice-password", "new-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Refresh(ctx, "alice", onA.RefreshToken, pub); !errors.Is(err, loginapi.ErrInvalidRefresh) {
		t.Fatalf("refresh after a password change elsewhere: %v, want ErrInvalidRefresh", err)
	}
	if _, err := a.Login(ctx, "alice", "alice-password", pub); !errors.Is(err, loginapi.ErrWrongPassword) {
		t.Fatalf("old password: %v, want ErrWrongPassword", err)
	}

	if _, err := a.Heartbeat(ctx, "ws://198.51.100.7:8081/v1/ws", nodes.def); err != nil {
		t.Fatal(err)
	}
	list, err := b.Supernodes(ctx)
	if err != nil || len(list) != 1 || list[0].Addr != "ws://198.51.100.7:8081/v1/ws" || !list[0].Key.Equal(pubOf(nodes.def)) {
		t.Fatalf("supernodes on the other server: %v, %v", list, err)
	}
	// The other server knows the entry is verified: no second dial-back.
	if _, err := b.Heartbeat(ctx, "ws://198.51.100.7:8081/v1/ws", nodes.def); err != nil {
		t.Fatal(err)
	}
	if got := nodes.hitsFor("198.51.100.7:8081"); got != 1 {
		t.Errorf("identify requests: got %d, want 1", got)
	}
	if err := b.Leave(ctx, "ws://198.51.100.7:8081/v1/ws", nodes.def); err != nil {
		t.Fatal(err)
	}
	if list, err := a.Supernodes(ctx); err != nil || len(list) != 0 {
		t.Fatalf("after leave on the other server: %v, %v", list, err)
	}

	sa.Close()
	_, a2 := start()
	if _, err := a2.Login(ctx, "alice", "new-password", pub); err != nil {
		t.Fatalf("login after restart: %v", err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logs.String(), "hunter2-db-password") {
		t.Fatal("the database password reached the logs")
	}
	if !strings.Contains(logs.String(), "127.0.0.1") {
		t.Fatalf("expected the (redacted) database address in the logs:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestPostgresDSNRedactedInErrors: a database that cannot be reached or a
// malformed URL gives an error that names the database without its password.
// It needs no PostgreSQL server.
func TestPostgresDSNRedactedInErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, dsn := range []string{
		"postgres://parley:s3cret-pw@" + closed + "/db?sslmode=disable&connect_timeout=5",
		"postgresql://parley:s3cret-pw@127.0.0.1:notaport/db",
		"postgres://parley:s3cret-pw@127.0.0.1/db?sslmode=bogus",
	} {
		_, err := New(Config{DB: dsn, DataDir: t.TempDir(), Argon2: cheapArgon})
		if err == nil {
			t.Fatalf("%s: no error", redactDSN(dsn))
		}
		t.Log(err)
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("error reveals the password: %v", err)
		}
	}
}
