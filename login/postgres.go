package login

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// isPostgres reports whether db names a PostgreSQL database rather than a file.
func isPostgres(db string) bool {
	low := strings.ToLower(db)
	return strings.HasPrefix(low, "postgres://") || strings.HasPrefix(low, "postgresql://")
}

// redactDSN hides the password of a PostgreSQL URL, for logs and errors.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "postgres://…"
}

// openPostgres connects to the PostgreSQL database at dsn (a postgres:// URL)
// and brings its schema up to date. Several login servers may share it.
func openPostgres(ctx context.Context, dsn string) (*sqlStore, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadConfig, redactDSN(dsn))
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %w", err) // the caller names the (redacted) URL
	}
	s := &sqlStore{db: db, pg: true}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
