package data

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// connectTimeout bounds a connection to a cluster when its DSN sets none:
// an unreachable cluster fails the request or the workflow step, which
// retries, instead of holding it.
const connectTimeout = 10 * time.Second

// Which DSN of a cluster: the names used in errors, logs and the sealing
// binding. A DSN itself never appears in any of them.
const (
	servingDSN = "dsn"
	adminDSN   = "admin_dsn"
)

// parseDSN checks that dsn is a postgres:// URL naming a host, a user and
// a database. Its errors never quote it: it holds a password.
func parseDSN(field, dsn string) (*url.URL, error) {
	bad := func(what string) error {
		return errs.Field(field, "invalid_dsn", "%s must be a postgres:// URL %s", field, what)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, bad("(it does not parse)")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, bad("(postgres:// or postgresql://)")
	}
	if u.Hostname() == "" {
		return nil, bad("with a host")
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, bad("with a user")
	}
	if db := strings.TrimPrefix(u.Path, "/"); db == "" || strings.Contains(db, "/") {
		return nil, bad("with a database")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, bad("that pgx accepts")
	}
	// Bulkhead reads the user and database from the URL (the serving
	// role is granted every tenant's role by that name); pgx connects
	// with its own reading, in which the query wins. Both must agree, or
	// the checks would judge one role and the grants go to another.
	if cfg.User != u.User.Username() {
		return nil, bad("whose user is named once, before the host (not again in its query)")
	}
	if cfg.Database != strings.TrimPrefix(u.Path, "/") {
		return nil, bad("whose database is named once, in its path (not again in its query)")
	}
	return u, nil
}

// hostOf is where a DSN points, without user or password: host:port/database.
func hostOf(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return net.JoinHostPort(u.Hostname(), port) + u.Path
}

// dial connects with dsn, to database instead of the DSN's own when it is
// not empty. Its error says why in words that hold neither the DSN nor a
// password (see reason).
func dial(ctx context.Context, cluster, which, dsn, database string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, unreachable(cluster, which, "its DSN does not parse")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	if database != "" {
		cfg.Database = database
	}
	// A cluster's connections are short-lived and run DDL: no statement
	// cache to go stale across a role or schema change.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, unreachable(cluster, which, reason(err))
	}
	return conn, nil
}

// unreachable is the error of a cluster that does not let Bulkhead in.
func unreachable(cluster, which, why string) error {
	return &errs.Error{Kind: errs.Unavailable, Code: "cluster_unreachable",
		Detail: fmt.Sprintf("cluster %s: cannot connect with its %s: %s", cluster, which, why)}
}

// reason describes a connection failure without the DSN: pgx's own
// message names the user and database, and a reason is shown to the
// operator and kept in the workflow's last error.
func reason(err error) string {
	var pgErr *pgconn.PgError
	var netErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &pgErr):
		return "the server refused it (SQLSTATE " + pgErr.Code + ")"
	case errors.Is(err, context.DeadlineExceeded):
		return "it timed out"
	case errors.Is(err, context.Canceled):
		return "it was cancelled"
	case errors.As(err, &dnsErr):
		return "the host name does not resolve"
	case errors.As(err, &netErr):
		return "the server does not answer (" + netErr.Op + ": " + errorText(netErr.Err) + ")"
	}
	return "the server does not answer"
}

// errorText is a network error's own words, short of anything after a
// colon that might quote an address the operator did not write.
func errorText(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// ident quotes an identifier for SQL text: names reach SQL only as
// quoted identifiers, and only after validation (Name, validPrefix).
func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// literal quotes s as a string literal, by the server, for the statements
// that take no parameters (CREATE ROLE … PASSWORD, COMMENT ON).
func literal(ctx context.Context, conn *pgx.Conn, s string) (string, error) {
	var q string
	if err := conn.QueryRow(ctx, `SELECT quote_literal($1::text)`, s).Scan(&q); err != nil {
		return "", fmt.Errorf("data: quote: %w", err)
	}
	return q, nil
}

// scramVerifier is the SCRAM-SHA-256 verifier of password, in the form
// PostgreSQL stores (RFC 5803): CREATE ROLE is given the verifier, not the
// password, so that a server's statement log never holds the password.
func scramVerifier(password string) (string, error) {
	const iterations = 4096
	salt := make([]byte, 16)
	rand.Read(salt)
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("data: scram: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(serverKey)), nil
}

// roleFacts are what the cluster checks read of a role.
type roleFacts struct {
	name                                string
	super, bypassRLS, inherit, createDB bool
	createRole                          bool
	// setRole: the session runs as another role than it logged in as
	// (a role set in the DSN's options).
	setRole bool
}

func currentRole(ctx context.Context, conn *pgx.Conn) (roleFacts, error) {
	var r roleFacts
	err := conn.QueryRow(ctx, `SELECT rolname, rolsuper, rolbypassrls, rolinherit, rolcreatedb, rolcreaterole, current_user <> session_user
		FROM pg_roles WHERE rolname = current_user`).Scan(&r.name, &r.super, &r.bypassRLS, &r.inherit, &r.createDB, &r.createRole, &r.setRole)
	if err != nil {
		return r, fmt.Errorf("data: read role: %w", err)
	}
	return r, nil
}
