package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

// migrateConfig is the configuration of bulkhead migrate.
type migrateConfig struct {
	database string // the owner role's URL (PostgreSQL) or an SQLite path
	grantTo  string // PostgreSQL: the serving role
}

const migrateUsage = `Usage: bulkhead migrate --database <owner's URL> --grant-to <serving role>

Applies Bulkhead's pending migrations, then (PostgreSQL) sets what the
serving role may do with the tables, every time: tables added by new
migrations are covered, and privileges granted beyond Bulkhead's needs are
taken back. Run it as the role that owns the database and its tables,
before starting (or upgrading) the nodes, which serve as --grant-to: an
ordinary role that owns nothing, so that a leaked serving credential cannot
switch row-level security off or rewrite the audit trail. Nodes may also
migrate at start with serve --migration-database. Concurrent migrations
wait for one another.

An SQLite database (a file path) is migrated as it is; it has no roles.

Flags:
`

func parseMigrateFlags(args []string, stderr io.Writer) (migrateConfig, error) {
	var c migrateConfig
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.StringVar(&c.database, "database", envOr("BULKHEAD_MIGRATION_DATABASE", ""),
		"the database as its owner role: a postgres:// URL, or an SQLite file path (env BULKHEAD_MIGRATION_DATABASE)")
	fs.StringVar(&c.grantTo, "grant-to", "", "PostgreSQL: the role that serves (bulkhead serve --database), to be granted what it needs")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), migrateUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return c, err
	}
	switch {
	case c.database == "":
		return c, fmt.Errorf("%w: migrate needs --database (the owner role's postgres:// URL, or an SQLite path)", errUsage)
	case storage.IsPostgres(c.database) && c.grantTo == "":
		return c, fmt.Errorf("%w: migrate on PostgreSQL needs --grant-to, the role that serves", errUsage)
	case !storage.IsPostgres(c.database) && c.grantTo != "":
		return c, fmt.Errorf("%w: --grant-to is for PostgreSQL; an SQLite database has no roles", errUsage)
	}
	return c, nil
}

// migrate runs bulkhead migrate.
func migrate(ctx context.Context, s stdio, args []string) error {
	c, err := parseMigrateFlags(args, s.err)
	if err != nil {
		return err
	}
	db, err := storage.Open(ctx, c.database)
	if err != nil {
		return err
	}
	defer db.Close()
	if db.Dialect() == storage.Postgres {
		if err := db.MigrateAndGrant(ctx, c.grantTo, app.Components()...); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "migrated %s as role %s; granted role %s what it needs to serve\n", redactDSN(c.database), db.Role(), c.grantTo)
		return nil
	}
	if err := db.Migrate(ctx, app.Components()...); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "migrated %s\n", c.database)
	return nil
}
