package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const clusterMigrateUsage = `Usage:
  bulkhead cluster migrate NAME --dir DIR [--no-wait] [--timeout 10m]
  bulkhead cluster migrations NAME [--json] [--check]
migrate registers the application's migrations, the *.sql files at the top
of DIR, for cluster NAME, and waits until every placement on it (the pool,
each bridge schema, each silo database) is at the newest, printing progress;
it exits 1 if a file fails or --timeout passes first. Each file is named
NNN_name.sql and is written once: the files registered before must be in
DIR unchanged, and new ones sort after them. Bulkhead applies each file in
one transaction, on every node's behalf one node at a time, and gives a
new bridge or silo tenant the files before it is active.
migrations prints how far each place is; --check exits 1 when a tenant is
behind (for CI).
Common flags: --addr, --token, --output json|table`

// pollInterval is how often cluster migrate reads the status while it
// waits.
const pollInterval = 500 * time.Millisecond

func clusterMigrate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("cluster migrate", clusterMigrateUsage)
	dir := fs.String("dir", "", "the directory of the migrations (NNN_name.sql)")
	noWait := fs.Bool("no-wait", false, "register the files and return without waiting for them to be applied")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for every placement to be migrated")
	pos, err := parseArgs(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: cluster migrate needs --dir", errUsage)
	}
	files, err := readMigrations(*dir)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	name := pos[0]
	st, err := c.RegisterMigrations(ctx, name, client.RegisterDataMigrations{Files: files})
	if err != nil {
		return err
	}
	fmt.Fprintf(s.err, "registered %d migration(s) on cluster %s, newest %s\n", len(st.Files), name, st.Newest)
	if !*noWait {
		if st, err = waitMigrated(ctx, c, s.err, st, *timeout); err != nil && !errors.Is(err, errSilent) {
			return err
		}
	}
	if perr := printMigrations(s.out, cf.output, st); perr != nil {
		return perr
	}
	return err
}

// readMigrations reads the *.sql files at the top of dir, in order of
// name; the server checks them.
func readMigrations(dir string) ([]client.DataMigrationFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []client.DataMigrationFile
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		files = append(files, client.DataMigrationFile{Name: e.Name(), SQL: string(b)})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.sql files in %s", dir)
	}
	return files, nil
}

// waitMigrated reads the status of the cluster until no tenant is behind,
// a run that ended after the registration failed, or timeout passes, and
// prints a line each time the progress changes. registered is the
// registration's answer.
func waitMigrated(ctx context.Context, c *client.Client, w io.Writer, registered client.DataMigrationStatus, timeout time.Duration) (client.DataMigrationStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, last := registered, ""
	for {
		at := 0
		for _, p := range st.Places {
			if p.Last == st.Newest {
				at++
			}
		}
		line := fmt.Sprintf("%d of %d place(s) at %s, %d tenant(s) behind", at, len(st.Places), st.Newest, len(st.Behind))
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		if len(st.Behind) == 0 && at == len(st.Places) {
			return st, nil
		}
		if st.LastRunError != "" && st.LastRunAt != nil && !st.LastRunAt.Before(registered.CheckedAt) {
			fmt.Fprintf(w, "the migration failed: %s\n", st.LastRunError)
			return st, errSilent
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(w, "not every place is migrated after %s; bulkhead cluster migrations %s tells how far they are\n", timeout, st.Cluster)
			return st, errSilent
		case <-time.After(pollInterval):
		}
		next, err := c.MigrationStatus(ctx, st.Cluster)
		switch {
		case err != nil && ctx.Err() != nil:
			continue // the timeout, said above
		case err != nil:
			return st, err
		}
		st = next
	}
}

func clusterMigrations(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("cluster migrations", clusterMigrateUsage)
	asJSON := fs.Bool("json", false, "print JSON (the same as --output json)")
	check := fs.Bool("check", false, "exit 1 when a tenant is behind the newest migration")
	pos, err := parseArgs(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if *asJSON {
		cf.output = "json"
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	st, err := c.MigrationStatus(ctx, pos[0])
	if err != nil {
		return err
	}
	if err := printMigrations(s.out, cf.output, st); err != nil {
		return err
	}
	if *check && len(st.Behind) > 0 {
		fmt.Fprintf(s.err, "%d tenant(s) behind %s on cluster %s\n", len(st.Behind), st.Newest, st.Cluster)
		return errSilent
	}
	return nil
}

// printMigrations prints a status as output (--output) says.
func printMigrations(w io.Writer, output string, st client.DataMigrationStatus) error {
	if output == "json" {
		return printJSON(w, st)
	}
	printMigrationStatus(w, st)
	return nil
}

// printMigrationStatus prints the places, then the summary.
func printMigrationStatus(w io.Writer, st client.DataMigrationStatus) {
	if len(st.Files) == 0 {
		fmt.Fprintf(w, "cluster %s has no migrations registered\n", st.Cluster)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tDATABASE\tSCHEMA\tTENANTS\tLAST\tPENDING\tERROR")
	for _, p := range st.Places {
		tenants := strings.Join(p.Tenants, ",")
		if p.Model == "pool" {
			tenants = fmt.Sprintf("%d", len(p.Tenants))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", p.Model, p.Database, p.Schema, orDash(tenants), orDash(p.Last), p.Pending, orDash(p.Error))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d migration(s), newest %s; ", len(st.Files), st.Newest)
	if len(st.Behind) == 0 {
		fmt.Fprintln(w, "no tenant is behind")
	} else {
		shown := st.Behind[:min(len(st.Behind), 10)]
		more := ""
		if len(st.Behind) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(st.Behind)-len(shown))
		}
		fmt.Fprintf(w, "%d tenant(s) behind: %s%s\n", len(st.Behind), strings.Join(shown, ", "), more)
	}
	if st.Running {
		fmt.Fprintln(w, "a run is going")
	}
	if st.LastRunAt != nil {
		result := "ok"
		if st.LastRunError != "" {
			result = st.LastRunError
		}
		fmt.Fprintf(w, "last run here: %s: %s\n", st.LastRunAt.Format(time.RFC3339), result)
	}
}
