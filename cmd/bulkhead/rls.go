package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/data/rlslint"
	"github.com/jackc/pgx/v5"
)

const rlsUsage = `Usage:
  bulkhead rls lint --dsn URL [--tenant-column tenant_id] [--setting app.tenant_id]
                    [--schema public,…] [--role ROLE] [--format text|json]

lint reads the catalogs of an application's PostgreSQL database (it changes
nothing) and reports what lets one tenant's rows reach another in the pool
model: tables with the tenant column but row-level security off or not
FORCEd, or no policy; permissive policies that do not limit rows to
tenant_column = current_setting(setting); a serving role that is a
superuser, has BYPASSRLS or CREATEROLE, or owns (or can SET ROLE to the
owner of) a tenant table; views over tenant tables without security_invoker, materialized
views over them; SECURITY DEFINER functions; tenant columns without an
index or that allow NULL. Each finding has a stable code, a severity, the
object and a remedy. Connect as the serving role (--dsn, or env
BULKHEAD_LINT_DSN): it is the role judged, unless --role names another.
Exit status: 0 no finding, 1 findings, 2 a usage error or a database that
cannot be read.`

// errCannotCheck is a check that could not run (the database could not be
// reached or read): exit status 2, which CI tells from findings (1).
var errCannotCheck = errors.New("cannot check")

// rlsLint runs bulkhead rls lint.
func rlsLint(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("rls lint", flag.ContinueOnError)
	var (
		dsn, format, schemas string
		opts                 rlslint.Options
	)
	fs.StringVar(&dsn, "dsn", envOr("BULKHEAD_LINT_DSN", ""), "the database as the serving role: a postgres:// URL (env BULKHEAD_LINT_DSN)")
	fs.StringVar(&opts.TenantColumn, "tenant-column", "tenant_id", "the tenant column of pool tables")
	fs.StringVar(&opts.Setting, "setting", "app.tenant_id", "the setting the policies compare the tenant column to")
	fs.StringVar(&schemas, "schema", "public", "the schemas to check, comma-separated")
	fs.StringVar(&opts.Role, "role", "", "the serving role to judge (default: the role of --dsn)")
	fs.StringVar(&format, "format", "text", "text (a line per finding and a summary) or json")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), rlsUsage+"\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, s.err); err != nil {
		return err
	}
	for _, sc := range strings.Split(schemas, ",") {
		if sc = strings.TrimSpace(sc); sc != "" {
			opts.Schemas = append(opts.Schemas, sc)
		}
	}
	switch {
	case dsn == "":
		return fmt.Errorf("%w: rls lint needs --dsn (or BULKHEAD_LINT_DSN): the application database as its serving role", errUsage)
	case format != "text" && format != "json":
		return fmt.Errorf("%w: --format is text or json, not %q", errUsage, format)
	case len(opts.Schemas) == 0:
		return fmt.Errorf("%w: --schema names no schema", errUsage)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// Neither the DSN nor the error, which may quote it: a key=value
		// DSN's password is not masked.
		return fmt.Errorf("%w: --dsn is not a PostgreSQL connection string (postgres://… or host=… dbname=…)", errUsage)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: connect to %s: %w", errCannotCheck, where(cfg), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	findings, err := rlslint.Lint(ctx, conn, opts)
	switch {
	case errors.Is(err, rlslint.ErrInvalidOptions):
		return fmt.Errorf("%w: %w", errUsage, err)
	case err != nil:
		return fmt.Errorf("%w: %w", errCannotCheck, err)
	}
	r := rlslint.NewReport(findings)
	if format == "json" {
		err = r.WriteJSON(s.out)
	} else {
		err = r.WriteText(s.out)
	}
	if err != nil {
		return err
	}
	if len(findings) > 0 {
		return errSilent
	}
	return nil
}

// where names the server, database and user of cfg, never its password.
func where(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s as %s", cfg.Host, cfg.Port, cfg.Database, cfg.User)
}
