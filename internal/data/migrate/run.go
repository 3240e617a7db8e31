// Package migrate applies the application's own migrations, plain SQL
// files written once, to every placement of its tenants' data on a cluster:
// the pool (the shared database's public schema), each bridge schema and
// each silo database.
//
// Each place keeps its own ledger, the table bulkhead_app_migrations in its
// schema, and each file is applied there in one transaction together with
// its ledger row: a crash (kill -9 of the runner, a lost connection) leaves
// every place either before or after a file, and the next Run resumes
// exactly there. One Run at a time per cluster: it holds a session advisory
// lock on the shared database for its whole length.
//
// What the application's files create is given to the roles that serve it:
// in the pool, a table with a tenant_id column gets row-level security,
// enabled and forced, the policy bulkhead_tenant and DML for the serving
// role, in the transaction that created it (so it never exists
// unprotected); in a bridge schema or silo database, every table and
// sequence the admin role creates is the tenant role's to use (default
// privileges, set in each file's transaction before the file runs).
package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultWorkers is how many places are migrated at once by default: each
// holds a connection, and the cluster's admin role has other work.
const DefaultWorkers = 4

// lockKey is the session advisory lock that a Run holds on the shared
// database: the first 8 bytes of SHA-256("bulkhead.app-migrations"), big
// endian (TestLockKey). Bulkhead's own migrations use another key, on
// another database.
const lockKey int64 = -1725272919872758659

// ledger is the table that records, in each place's schema, the files
// applied there.
const ledger = "bulkhead_app_migrations"

// Cluster is the application cluster whose places are migrated.
type Cluster struct {
	Databases      Databases
	SharedDatabase string // the pool's database, which the bridge schemas are in
	// Prefix begins every bridge schema, silo database and tenant role
	// (api.DataCluster.Prefix, "t_" if empty): Run touches no other.
	Prefix string
	// ServingRole is the application's serving role, which gets DML on the
	// pool's tenant tables.
	ServingRole string
}

// Options tune a Run; the zero value is the default.
type Options struct {
	Workers int // places migrated at once; DefaultWorkers if 0
	// Wait makes Run wait for another Run on the cluster to end rather than
	// fail with code migrations_running.
	Wait bool
	// Progress, if set, is called after each file applied to a place
	// (one call at a time, from Run's goroutines).
	Progress func(Progress)
}

// Progress tells how far a Run is.
type Progress struct {
	Place Place
	File  string // just applied to Place
	Done  int    // files applied so far by this Run, over every place
	Total int    // files this Run has to apply
}

// Result is a place's state after Run, or as Status finds it.
type Result struct {
	Place
	Last    string   // the newest file applied, "" if none
	Pending int      // files not applied yet
	Applied []string // the files this Run applied
	Err     error    // why the place is not at the newest file (a failed file, an unreachable database)
}

// Report is the outcome of Run or Status: every place, the pool first.
type Report struct {
	Newest  string // the newest file
	Places  []Result
	Applied int // files applied by this Run, over every place
}

// Failed returns the places that Run could not bring to the newest file.
func (r Report) Failed() []Result {
	var out []Result
	for _, p := range r.Places {
		if p.Err != nil {
			out = append(out, p)
		}
	}
	return out
}

// Behind returns the tenants whose place is not at the newest file,
// sorted.
func (r Report) Behind() []string {
	var out []string
	for _, p := range r.Places {
		if p.Last != r.Newest {
			out = append(out, p.Tenants...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Run applies files (from Load) to the pool and to the place of every
// target, and returns what it did.
//
// It first reads every place's ledger; an applied file that is not among
// files, whose checksum changed, or that was applied after a file still
// pending (a file added out of order) is an error that names file and
// place, and nothing is applied anywhere. Then it migrates the pool
// alone: a file that fails there stops the run before any tenant's schema
// is touched (a bad file fails on the pool first, and the pool's tenants
// are most of them). Then the bridge schemas and silo databases,
// opts.Workers at a time: a file that fails on one leaves that place at
// the file before (its transaction is rolled back) and the other places
// go on, since they are different tenants' data and a failure on one is
// usually about its data; Run then returns the report and an error with
// code migration_failed naming the first failure, and the next Run picks
// the failed places up where they stopped. A place that cannot be reached
// fails the same way.
func Run(ctx context.Context, c Cluster, files []File, targets []Target, opts Options) (Report, error) {
	places, err := prepare(&c, files, targets)
	if err != nil {
		return Report{}, err
	}
	unlock, err := lock(ctx, c, opts.Wait)
	if err != nil {
		return Report{}, err
	}
	defer unlock()

	rep, plans := survey(ctx, c, files, places, opts.Workers)
	for _, r := range rep.Places {
		if errs.Is(r.Err, codeChanged) {
			return rep, r.Err
		}
	}
	total := 0
	for _, p := range plans {
		total += len(p)
	}
	prog := &progress{fn: opts.Progress, total: total}
	migratePlace(ctx, c, &rep.Places[0], plans[0], prog) // the pool: see above
	if rep.Places[0].Err == nil {
		each(len(places)-1, opts.Workers, func(i int) {
			migratePlace(ctx, c, &rep.Places[i+1], plans[i+1], prog)
		})
	} else {
		for i := range rep.Places[1:] {
			if rep.Places[i+1].Err == nil && len(plans[i+1]) > 0 {
				rep.Places[i+1].Err = errors.New("migrate: not attempted: the pool failed")
			}
		}
	}
	rep.Applied = prog.done
	return rep, failure(rep)
}

// Status reads every place's ledger (it creates none and takes no lock)
// and reports how far each is: Last, Pending, and in Err what keeps it
// from being migrated (an unreachable database, a missing schema, a file
// whose checksum changed).
func Status(ctx context.Context, c Cluster, files []File, targets []Target, opts Options) (Report, error) {
	places, err := prepare(&c, files, targets)
	if err != nil {
		return Report{}, err
	}
	rep, _ := survey(ctx, c, files, places, opts.Workers)
	return rep, ctx.Err()
}

// Running reports whether a Run holds the cluster's lock, on this process
// or any other: a status read on one node tells of a run on another.
func Running(ctx context.Context, c Cluster) (bool, error) {
	if c.Databases == nil || c.SharedDatabase == "" {
		return false, errors.New("migrate: no connections to the cluster")
	}
	conn, release, err := c.Databases.Conn(ctx, c.SharedDatabase)
	if err != nil {
		return false, err
	}
	defer release()
	// A bigint advisory key is in pg_locks as its high half (classid) and
	// low half (objid), with objsubid 1.
	k := lockKey
	key := uint64(k) // its bits
	var held bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1)`,
		int64(key>>32), int64(key&0xffffffff)).Scan(&held)
	if err != nil {
		return false, fmt.Errorf("migrate: read the lock: %w", err)
	}
	return held, nil
}

// The codes of Run's errors (errs.Error.Code).
const (
	codeRunning = "migrations_running" // another Run holds the cluster's lock
	codeChanged = "migration_changed"  // an applied file changed, vanished or was added before it
	codeFailed  = "migration_failed"   // a file failed on a place, or a place could not be reached
)

func prepare(c *Cluster, files []File, targets []Target) ([]Place, error) {
	if c.Prefix == "" {
		c.Prefix = "t_"
	}
	switch {
	case c.Databases == nil:
		return nil, errors.New("migrate: no connections to the cluster")
	case c.SharedDatabase == "":
		return nil, errors.New("migrate: no shared database")
	case c.ServingRole == "":
		return nil, errors.New("migrate: no serving role")
	case !name.MatchString(c.Prefix):
		return nil, invalid("cluster prefix %q: want lower-case letters, digits and '_'", c.Prefix)
	}
	if err := checkFiles(files); err != nil {
		return nil, err
	}
	return places(*c, targets)
}

// lock takes the cluster's advisory lock on a connection of its own to the
// shared database, which it keeps until unlock: a session lock, so that it
// is released by the server if this process dies.
func lock(ctx context.Context, c Cluster, wait bool) (unlock func(), err error) {
	conn, release, err := c.Databases.Conn(ctx, c.SharedDatabase)
	if err != nil {
		return nil, err
	}
	locked := true
	if wait {
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockKey)
	} else {
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&locked)
	}
	if err != nil || !locked {
		release()
		if err != nil {
			return nil, fmt.Errorf("migrate: lock: %w", err)
		}
		return nil, errs.E(errs.Conflict, codeRunning, "the application's migrations are already running on this cluster")
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, lockKey).Scan(&ok); err != nil || !ok {
			conn.Close(ctx) // a pooled connection must not keep the lock
		}
		release()
	}, nil
}

// survey reads every place's ledger and returns what it finds and, per
// place, the files to apply there.
func survey(ctx context.Context, c Cluster, files []File, places []Place, workers int) (Report, [][]File) {
	rep := Report{Newest: files[len(files)-1].Name, Places: make([]Result, len(places))}
	plans := make([][]File, len(places))
	each(len(places), workers, func(i int) {
		r := &rep.Places[i]
		r.Place = places[i]
		applied, err := readLedger(ctx, c.Databases, places[i])
		if err != nil {
			r.Err = err
			r.Pending = len(files)
			return
		}
		plans[i], r.Err = plan(files, applied, places[i])
		r.Last, r.Pending = last(applied), len(plans[i])
	})
	return rep, plans
}

// entry is a ledger row.
type entry struct{ name, checksum string }

func last(applied []entry) string {
	if len(applied) == 0 {
		return ""
	}
	return applied[len(applied)-1].name
}

// plan returns the files of files not in applied (sorted by name), or an
// error if applied does not agree with files: a file applied there is
// missing or changed, or a file still to apply sorts before one applied
// (it was added out of order; applying it now would run it after a file
// written to follow it).
func plan(files []File, applied []entry, p Place) ([]File, error) {
	byName := make(map[string]File, len(files))
	for _, f := range files {
		byName[f.Name] = f
	}
	done := make(map[string]bool, len(applied))
	for _, a := range applied {
		f, ok := byName[a.name]
		switch {
		case !ok:
			return nil, errs.E(errs.Conflict, codeChanged, "%s has migration %s applied, which is not among the files", p, a.name)
		case f.Checksum != a.checksum:
			return nil, errs.E(errs.Conflict, codeChanged, "migration %s has changed since it was applied to %s (checksum %.12s…, applied %.12s…); "+
				"write a new file instead", a.name, p, f.Checksum, a.checksum)
		}
		done[a.name] = true
	}
	var todo []File
	for _, f := range files {
		if done[f.Name] {
			continue
		}
		if l := last(applied); f.Name < l {
			return nil, errs.E(errs.Conflict, codeChanged, "migration %s is not applied to %s but %s, which sorts after it, is; "+
				"rename it to sort after %s", f.Name, p, l, l)
		}
		todo = append(todo, f)
	}
	return todo, nil
}

// readLedger returns the files applied to p, by name; none if it has no
// ledger yet.
func readLedger(ctx context.Context, dbs Databases, p Place) ([]entry, error) {
	conn, release, err := dbs.Conn(ctx, p.Database)
	if err != nil {
		return nil, fmt.Errorf("migrate: %s: %w", p, err)
	}
	defer release()
	res, err := conn.PgConn().Exec(ctx, `SELECT name, checksum FROM `+ledgerOf(p)+` ORDER BY name`).ReadAll()
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table: no file applied yet, or no schema
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1::text)`,
			pgx.QueryExecModeExec, p.Schema).Scan(&exists); err != nil {
			return nil, fmt.Errorf("migrate: %s: %w", p, err)
		}
		if !exists {
			return nil, fmt.Errorf("migrate: %s: the schema does not exist", p)
		}
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("migrate: %s: read the ledger: %w", p, err)
	}
	var out []entry
	for _, row := range res[0].Rows {
		out = append(out, entry{string(row[0]), string(row[1])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name }) // ORDER BY's collation may not be bytewise
	return out, nil
}

func ledgerOf(p Place) string { return pgx.Identifier{p.Schema, ledger}.Sanitize() }

// each calls fn(0) … fn(n-1) from up to workers goroutines.
func each(n, workers int, fn func(i int)) {
	if workers <= 0 {
		workers = DefaultWorkers
	}
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// progress counts the files applied and calls Options.Progress, one call
// at a time.
type progress struct {
	fn          func(Progress)
	mu          sync.Mutex
	done, total int
}

func (p *progress) step(pl Place, file string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.fn != nil {
		p.fn(Progress{Place: pl, File: file, Done: p.done, Total: p.total})
	}
}

// failure is Run's error for a report with failed places.
func failure(rep Report) error {
	failed := rep.Failed()
	if len(failed) == 0 {
		return nil
	}
	return &errs.Error{Kind: errs.Conflict, Code: codeFailed, Err: failed[0].Err,
		Detail: fmt.Sprintf("%d of %d places are not at %s; the first", len(failed), len(rep.Places), rep.Newest)}
}
