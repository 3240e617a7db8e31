package data

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Moving a tenant's rows between placements, on the cluster.
//
// Why not logical replication: a bridge placement is a schema named for
// the tenant, and a publication's tables arrive under their own schema's
// name, so pool ↔ bridge (one database, two schemas) cannot be expressed;
// it also needs wal_level=logical (a server restart), the REPLICATION
// attribute for the admin role, and a subscription made in the same
// cluster as its publication needs its slot made by hand. Instead the
// source gets capture triggers, the way trigger-based online schema
// change tools work:
//
//   - Capture: before the first row is copied, each moved table of the
//     source gets AFTER ROW triggers, their WHEN clause limited to the
//     tenant's rows (tenant_id = the tenant: a pool's other tenants pay a
//     comparison in C, no function call), which record the primary key
//     of every row the tenant's writes touch in bulkhead_move.changes, in
//     the writer's own transaction: a change is recorded if and only if it
//     commits.
//   - Copy: the tenant's rows, table by table in primary-key order, in
//     batches of COPY text (every type round-trips), each batch one
//     transaction on the target; a copy cut off resumes after the highest
//     key the target holds.
//   - Catch up: the recorded keys, in order, are read again from the
//     source and upserted into the target (or deleted there if the source
//     no longer has them), then forgotten. Applying a key twice is
//     harmless, so a crash between the target's commit and the forgetting
//     costs nothing but the repeat.
//   - Fence: the capture trigger takes a shared advisory lock keyed by the
//     tenant, in the writer's transaction; the cutover takes it exclusive.
//     Once the writers already under way commit, the tenant's writes stop
//     at their first row, other tenants' are not touched, and reads never
//     wait. The last keys are applied, each table's row count and
//     checksum compared, and bulkhead_move.fences marks the tenant moved
//     before the fence is lifted: a writer that was waiting, or that still
//     holds the old placement, then fails with SQLSTATE BHMOV, which
//     sdk/tenantdb answers by reading the placement again and running the
//     transaction there.
//
// Tables moved: those of the placement's schema with a tenant_id column,
// each with a primary key and the same columns on both sides (the same
// registered migrations made both); their order follows foreign keys,
// parents first.

// movedState is the SQLSTATE of a write to a placement the tenant has left.
const movedState = "BHMOV"

// moveSchema holds the capture's tables and function in a source database.
const moveSchema = "bulkhead_move"

// captureSQL makes what the capture needs in a source database. The
// function runs as the admin role (SECURITY DEFINER, with a fixed path):
// the application's roles get nothing in bulkhead_move.
var captureSQL = []string{
	`CREATE SCHEMA IF NOT EXISTS ` + moveSchema,
	`REVOKE ALL ON SCHEMA ` + moveSchema + ` FROM PUBLIC`,
	`CREATE TABLE IF NOT EXISTS ` + moveSchema + `.changes (seq bigserial PRIMARY KEY, tenant_id text NOT NULL, tbl text NOT NULL, pk text[] NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS changes_tenant ON ` + moveSchema + `.changes (tenant_id, seq)`,
	`CREATE TABLE IF NOT EXISTS ` + moveSchema + `.fences (tenant_id text PRIMARY KEY, moved boolean NOT NULL)`,
	`CREATE OR REPLACE FUNCTION ` + moveSchema + `.capture() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
	tid text := TG_ARGV[0];
	keys text[] := TG_ARGV[1:TG_NARGS - 1];
	moved boolean;
	oldpk text[];
	newpk text[];
BEGIN
	PERFORM pg_advisory_xact_lock_shared(hashtextextended('bulkhead-move:' || tid, 0));
	-- FOR SHARE reads the fence's latest state whatever the writer's
	-- isolation: READ COMMITTED waits for and reads the newest version; a
	-- REPEATABLE READ or SERIALIZABLE snapshot older than the mark fails
	-- with serialization_failure. A fence row this snapshot cannot see at
	-- all (made after it began) counts as moved: retrying is always safe.
	SELECT f.moved INTO moved FROM ` + moveSchema + `.fences f WHERE f.tenant_id = tid FOR SHARE;
	IF moved IS NULL OR moved THEN
		RAISE EXCEPTION 'tenant % has moved: its data lives in another placement now', tid
			USING ERRCODE = '` + movedState + `', HINT = 'read the placement again and retry the transaction there';
	END IF;
	IF TG_OP <> 'INSERT' THEN
		SELECT array_agg(to_jsonb(OLD) ->> k ORDER BY o) INTO oldpk FROM unnest(keys) WITH ORDINALITY AS u(k, o);
		INSERT INTO ` + moveSchema + `.changes (tenant_id, tbl, pk) VALUES (tid, TG_TABLE_NAME, oldpk);
	END IF;
	IF TG_OP <> 'DELETE' THEN
		SELECT array_agg(to_jsonb(NEW) ->> k ORDER BY o) INTO newpk FROM unnest(keys) WITH ORDINALITY AS u(k, o);
		IF oldpk IS DISTINCT FROM newpk THEN
			INSERT INTO ` + moveSchema + `.changes (tenant_id, tbl, pk) VALUES (tid, TG_TABLE_NAME, newpk);
		END IF;
	END IF;
	RETURN NULL;
END
$f$`,
	`REVOKE ALL ON FUNCTION ` + moveSchema + `.capture() FROM PUBLIC`,
}

// fenceKey is the advisory lock of tenant id's fence, as the capture
// function computes it.
const fenceKeySQL = `hashtextextended('bulkhead-move:' || $1, 0)`

// sessionSQL fixes what the text of a value depends on, on both sides of
// a move: COPY text and the checksums must read the same on each.
const sessionSQL = `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; ` +
	`SET extra_float_digits = 3; SET bytea_output = 'hex'; SET standard_conforming_strings = on; ` +
	`SET client_encoding = 'UTF8'`

// end is one side of a move: where the tenant's rows are.
type end struct {
	c        cluster
	model    string
	database string // "" for the cluster's shared database
	schema   string
}

func (e end) String() string {
	if e.model == Silo {
		return e.model + " " + e.database
	}
	return e.model + " " + e.schema
}

// open connects to e's database as the cluster's admin role, with the
// session fixed (sessionSQL) and app.tenant_id set for the whole session:
// row-level security in a pool binds the admin role too.
func (e end) open(ctx context.Context, id tenant.ID) (*pgx.Conn, error) {
	db := e.database
	if db == e.c.database {
		db = ""
	}
	conn, err := dial(ctx, e.c.Name, adminDSN, e.c.adminDSN, db)
	if err != nil {
		return nil, err
	}
	_, err = conn.Exec(ctx, sessionSQL)
	if err == nil {
		_, err = conn.Exec(ctx, `SELECT set_config('app.tenant_id', $1, false)`, string(id))
	}
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("data: move: set up the session on %s: %w", e, err)
	}
	return conn, nil
}

// table is a moved table: its columns (generated ones left out, which
// both sides compute), key and how each key column is typed.
type table struct {
	name     string
	cols     []string
	key      []string
	keyTypes []string
	parents  []string // moved tables it has a foreign key to
}

// listTables reads the moved tables of schema, parents first.
func listTables(ctx context.Context, conn *pgx.Conn, schema string) ([]table, error) {
	rows, err := conn.Query(ctx, `SELECT c.relname,
		ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
			ORDER BY a.attnum)::text[],
		ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n
			ORDER BY k.o)::text[],
		ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o) JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n
			ORDER BY k.o)::text[],
		ARRAY(SELECT DISTINCT p.relname FROM pg_constraint f JOIN pg_class p ON p.oid = f.confrelid
			WHERE f.conrelid = c.oid AND f.contype = 'f' AND p.relnamespace = c.relnamespace AND p.oid <> c.oid)::text[]
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute t ON t.attrelid = c.oid AND t.attname = 'tenant_id' AND NOT t.attisdropped
		LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		ORDER BY c.relname`, schema)
	if err != nil {
		return nil, fmt.Errorf("data: move: list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		err := r.Scan(&t.name, &t.cols, &t.key, &t.keyTypes, &t.parents)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("data: move: list tables: %w", err)
	}
	for _, t := range tables {
		if len(t.key) == 0 {
			return nil, moveRefused("table %s has no primary key: a moved table needs one to copy and catch up by", t.name)
		}
	}
	return parentsFirst(tables), nil
}

// parentsFirst orders tables so that a table comes after the tables its
// foreign keys point to (a cycle keeps the order by name).
func parentsFirst(tables []table) []table {
	out := make([]table, 0, len(tables))
	placed := map[string]bool{}
	for len(out) < len(tables) {
		progress := false
		for _, t := range tables {
			if placed[t.name] {
				continue
			}
			ready := true
			for _, p := range t.parents {
				if !placed[p] && slices.ContainsFunc(tables, func(o table) bool { return o.name == p }) {
					ready = false
				}
			}
			if ready {
				out, placed[t.name], progress = append(out, t), true, true
			}
		}
		if !progress {
			for _, t := range tables {
				if !placed[t.name] {
					out, placed[t.name] = append(out, t), true
				}
			}
		}
	}
	return out
}

// keyedByTenant refuses a pool target table whose primary key does not
// hold tenant_id: the tenant's rows, made in a schema or database of its
// own, could then take keys other tenants' rows hold in the shared table.
func keyedByTenant(tables []table) error {
	for _, t := range tables {
		if !slices.Contains(t.key, "tenant_id") {
			return moveRefused("table %s's primary key does not include tenant_id: moved into the pool, the tenant's rows could meet other tenants' keys", t.name)
		}
	}
	return nil
}

// sameTables refuses a move whose sides differ in their moved tables.
func sameTables(src, dst []table) error {
	byName := map[string]table{}
	for _, t := range dst {
		byName[t.name] = t
	}
	for _, s := range src {
		d, ok := byName[s.name]
		// Not a refusal: a file registered during the move reaches the
		// source with the next run of the migrations, and the step is
		// tried again until both sides agree.
		switch {
		case !ok:
			return fmt.Errorf("data: move: table %s is missing in the target: both placements need the same registered migrations (retrying)", s.name)
		case !slices.Equal(s.cols, d.cols) || !slices.Equal(s.key, d.key) || !slices.Equal(s.keyTypes, d.keyTypes):
			return fmt.Errorf("data: move: table %s has other columns or another key in the target: both placements need the same registered migrations (retrying)", s.name)
		}
	}
	return nil
}

// moveRefusedError is a move that cannot be done as the placements are;
// retrying does not help.
type moveRefusedError struct{ msg string }

func (e moveRefusedError) Error() string { return "data: move: " + e.msg }

func moveRefused(format string, a ...any) error {
	return moveRefusedError{msg: fmt.Sprintf(format, a...)}
}

// triggerName is the name of tenant id's capture trigger for op on a table.
func triggerName(id tenant.ID, op string) string {
	sum := sha256.Sum256([]byte(id))
	return "bulkhead_move_" + hex.EncodeToString(sum[:16]) + "_" + op
}

// quote is s as an SQL string literal, for the statements that take no
// parameters (COPY): standard_conforming_strings is on (sessionSQL), and
// no PostgreSQL text holds a NUL.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// installCapture makes the capture schema and tenant id's triggers on each
// table of the source. CREATE TRIGGER waits for the writers under way on
// the table (all tenants'); lock_timeout keeps that wait short, and a
// step that timed out is tried again.
func installCapture(ctx context.Context, conn *pgx.Conn, schema string, id tenant.ID, tables []table) error {
	var owner sql.NullBool
	if err := conn.QueryRow(ctx, `SELECT nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) FROM pg_namespace WHERE nspname = $1`,
		moveSchema).Scan(&owner); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("data: move: read the capture schema: %w", err)
	}
	if owner.Valid && !owner.Bool {
		return moveRefused("schema %s exists and the admin role does not own it: Bulkhead does not use what it did not make", moveSchema)
	}
	for _, q := range captureSQL {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("data: move: make the capture schema: %w", err)
		}
	}
	// The fence row exists before any trigger: a writer's snapshot that
	// cannot see it is older than the capture, and is sent to retry.
	if _, err := conn.Exec(ctx, `INSERT INTO `+moveSchema+`.fences (tenant_id, moved) VALUES ($1, false) ON CONFLICT (tenant_id) DO NOTHING`,
		string(id)); err != nil {
		return fmt.Errorf("data: move: make the fence: %w", err)
	}
	tid := quote(string(id))
	for _, t := range tables {
		args := tid
		for _, k := range t.key {
			args += ", " + quote(k)
		}
		qt := ident(schema, t.name)
		for _, trg := range []struct{ op, event, when string }{
			{"ins", "INSERT", "NEW.tenant_id = " + tid},
			{"upd", "UPDATE", "OLD.tenant_id = " + tid + " OR NEW.tenant_id = " + tid},
			{"del", "DELETE", "OLD.tenant_id = " + tid},
		} {
			name := triggerName(id, trg.op)
			err := retryLocked(ctx, func() error {
				return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
						return err
					}
					var exists bool
					if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2)`,
						qt, name).Scan(&exists); err != nil || exists {
						return err
					}
					_, err := tx.Exec(ctx, `CREATE TRIGGER `+ident(name)+` AFTER `+trg.event+` ON `+qt+
						` FOR EACH ROW WHEN (`+trg.when+`) EXECUTE FUNCTION `+moveSchema+`.capture(`+args+`)`)
					return err
				})
			})
			if err != nil {
				return fmt.Errorf("data: move: capture %s: %w", t.name, err)
			}
		}
	}
	return nil
}

// retryLocked runs fn up to three times while it fails for lock_timeout
// (SQLSTATE 55P03), a second apart.
func retryLocked(ctx context.Context, fn func() error) error {
	var err error
	for range 3 {
		if err = fn(); sqlStateOf(err) != "55P03" {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return err
}

// removeCapture drops tenant id's triggers, recorded changes and fence
// from a source.
func removeCapture(ctx context.Context, conn *pgx.Conn, schema string, id tenant.ID) error {
	rows, err := conn.Query(ctx, `SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND t.tgname = ANY($2)`,
		schema, []string{triggerName(id, "ins"), triggerName(id, "upd"), triggerName(id, "del")})
	if err != nil {
		return fmt.Errorf("data: move: find capture triggers: %w", err)
	}
	type trg struct{ table, name string }
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (trg, error) {
		var t trg
		return t, r.Scan(&t.table, &t.name)
	})
	if err != nil {
		return fmt.Errorf("data: move: find capture triggers: %w", err)
	}
	for _, t := range found {
		// DROP TRIGGER takes the table's strongest lock: behind a long
		// transaction it would queue every tenant's reads of a pool
		// table behind itself. It waits 2 s at most, and is tried again.
		err := retryLocked(ctx, func() error {
			return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `DROP TRIGGER IF EXISTS `+ident(t.name)+` ON `+ident(schema, t.table))
				return err
			})
		})
		if err != nil {
			return fmt.Errorf("data: move: drop capture trigger: %w", err)
		}
	}
	var has bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, moveSchema+".fences").Scan(&has); err != nil || !has {
		return err
	}
	for _, q := range []string{`DELETE FROM ` + moveSchema + `.changes WHERE tenant_id = $1`, `DELETE FROM ` + moveSchema + `.fences WHERE tenant_id = $1`} {
		if _, err := conn.Exec(ctx, q, string(id)); err != nil {
			return fmt.Errorf("data: move: forget the capture: %w", err)
		}
	}
	return nil
}

// copyBatch is how many rows one copy transaction carries.
const copyBatch = 5000

// keyList is a table's key columns, as SQL.
func (t table) keyList() string {
	parts := make([]string, len(t.key))
	for i, k := range t.key {
		parts[i] = ident(k)
	}
	return strings.Join(parts, ", ")
}

func (t table) colList() string {
	parts := make([]string, len(t.cols))
	for i, c := range t.cols {
		parts[i] = ident(c)
	}
	return strings.Join(parts, ", ")
}

// keyLiteral is a key's values as a row of typed literals.
func (t table) keyLiteral(vals []string) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = quote(v) + "::" + t.keyTypes[i]
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// lastKey is the highest key of tenant id's rows in t on conn's side, as
// text; nil when it has none.
func lastKey(ctx context.Context, conn *pgx.Conn, schema string, t table, id tenant.ID) ([]string, error) {
	texts := make([]string, len(t.key))
	for i, k := range t.key {
		texts[i] = ident(k) + "::text"
	}
	var key []string
	err := conn.QueryRow(ctx, `SELECT ARRAY[`+strings.Join(texts, ", ")+`] FROM `+ident(schema, t.name)+
		` WHERE tenant_id = $1 ORDER BY `+t.keyList()+` DESC LIMIT 1`, string(id)).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("data: move: last key of %s: %w", t.name, err)
	}
	return key, nil
}

// copyRows copies tenant id's rows of every table from src to dst, in
// one snapshot of the source (REPEATABLE READ): the copy holds the
// source's foreign keys as of one moment, parents copied first. What dst
// holds of the tenant is deleted first, so that a copy cut off by a crash
// is simply done again (the changes recorded since the capture began are
// applied afterwards either way).
func copyRows(ctx context.Context, src, dst *pgx.Conn, srcSchema, dstSchema string, tables []table, id tenant.ID, progress func(int64)) error {
	for i := len(tables) - 1; i >= 0; i-- {
		if _, err := dst.Exec(ctx, `DELETE FROM `+ident(dstSchema, tables[i].name)+` WHERE tenant_id = $1`, string(id)); err != nil {
			return fmt.Errorf("data: move: empty %s in the target: %w", tables[i].name, err)
		}
	}
	if _, err := src.Exec(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`); err != nil {
		return fmt.Errorf("data: move: begin a snapshot: %w", err)
	}
	defer src.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
	for _, t := range tables {
		if err := copyTable(ctx, src, dst, srcSchema, dstSchema, t, id, progress); err != nil {
			return err
		}
	}
	return nil
}

// copyTable copies tenant id's rows of t from src to dst in batches.
func copyTable(ctx context.Context, src, dst *pgx.Conn, srcSchema, dstSchema string, t table, id tenant.ID, progress func(int64)) error {
	var after []string
	var buf bytes.Buffer
	for {
		where := `tenant_id = ` + quote(string(id))
		if after != nil {
			where += ` AND (` + t.keyList() + `) > ` + t.keyLiteral(after)
		}
		buf.Reset()
		tag, err := src.PgConn().CopyTo(ctx, &buf, `COPY (SELECT `+t.colList()+` FROM `+ident(srcSchema, t.name)+
			` WHERE `+where+` ORDER BY `+t.keyList()+` LIMIT `+fmt.Sprint(copyBatch)+`) TO STDOUT`)
		if err != nil {
			return fmt.Errorf("data: move: read %s: %w", t.name, err)
		}
		n := tag.RowsAffected()
		if n == 0 {
			return nil
		}
		if err := pgx.BeginFunc(ctx, dst, func(tx pgx.Tx) error {
			return loadRows(ctx, tx, dstSchema, t, id, buf.Bytes(), false)
		}); err != nil {
			return err
		}
		progress(n)
		if n < copyBatch {
			return nil
		}
		if after, err = lastKey(ctx, dst, dstSchema, t, id); err != nil {
			return err
		}
	}
}

// applyBatch is how many recorded changes one catch-up transaction applies.
const applyBatch = 2000

// keysPerStatement bounds the keys one statement names.
const keysPerStatement = 1000

// change is a recorded change: a key of a table.
type change struct {
	seq   int64
	table string
	key   []string
}

// applyChanges applies tenant id's changes recorded so far (up to the
// highest sequence number there is when it begins: writers that outpace
// it cannot keep it running) to dst, in batches; it returns how many it
// applied. Under the fence nothing new comes, so it applies them all.
//
// A batch reads its changes and the rows they name in one snapshot of the
// source (REPEATABLE READ), so what it writes to the target holds the
// source's foreign keys as of one moment; the target applies it in one
// transaction, deletes children first and upserts parents first. A row
// whose newer state points to a parent changed later than the batch's
// last change would still break a foreign key: the batch is then applied
// again with every change the snapshot holds.
func applyChanges(ctx context.Context, src, dst *pgx.Conn, srcSchema, dstSchema string, tables []table, id tenant.ID) (int64, error) {
	var upTo int64
	if err := src.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM `+moveSchema+`.changes WHERE tenant_id = $1`, string(id)).Scan(&upTo); err != nil {
		return 0, fmt.Errorf("data: move: read changes: %w", err)
	}
	var applied int64
	for {
		n, err := applyOnce(ctx, src, dst, srcSchema, dstSchema, tables, id, upTo, applyBatch)
		if sqlStateOf(err) == "23503" {
			n, err = applyOnce(ctx, src, dst, srcSchema, dstSchema, tables, id, upTo, 0)
		}
		applied += n
		if err != nil || n < applyBatch {
			return applied, err
		}
	}
}

// sqlStateOf is err's SQLSTATE, or "".
func sqlStateOf(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// applyOnce applies one batch of at most limit changes (0: all there are).
func applyOnce(ctx context.Context, src, dst *pgx.Conn, srcSchema, dstSchema string, tables []table, id tenant.ID, upTo int64, limit int) (int64, error) {
	byName := map[string]table{}
	for _, t := range tables {
		byName[t.name] = t
	}
	if _, err := src.Exec(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`); err != nil {
		return 0, fmt.Errorf("data: move: begin a snapshot: %w", err)
	}
	defer src.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
	q := `SELECT seq, tbl, pk FROM ` + moveSchema + `.changes WHERE tenant_id = $1 AND seq <= $2 ORDER BY seq`
	if limit > 0 {
		q += ` LIMIT ` + fmt.Sprint(limit)
	}
	rows, err := src.Query(ctx, q, string(id), upTo)
	if err != nil {
		return 0, fmt.Errorf("data: move: read changes: %w", err)
	}
	changes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (change, error) {
		var c change
		return c, r.Scan(&c.seq, &c.table, &c.key)
	})
	if err != nil {
		return 0, fmt.Errorf("data: move: read changes: %w", err)
	}
	if len(changes) == 0 {
		return 0, nil
	}
	recorded := map[string][][]string{}
	for _, c := range changes {
		if _, ok := byName[c.table]; !ok {
			return 0, moveRefused("a change names table %s, which is not moved", c.table)
		}
		recorded[c.table] = append(recorded[c.table], c.key)
	}
	keys := map[string][][]string{}
	for name, ks := range recorded {
		if keys[name], err = normalizeKeys(ctx, src, byName[name], ks); err != nil {
			return 0, err
		}
	}
	err = pgx.BeginFunc(ctx, dst, func(tx pgx.Tx) error {
		for i := len(tables) - 1; i >= 0; i-- {
			for part := range slices.Chunk(keys[tables[i].name], keysPerStatement) {
				if err := deleteGone(ctx, src, tx, srcSchema, dstSchema, tables[i], id, part); err != nil {
					return err
				}
			}
		}
		for _, t := range tables {
			for part := range slices.Chunk(keys[t.name], keysPerStatement) {
				if err := upsertKeys(ctx, src, tx, srcSchema, dstSchema, t, id, part); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if _, err := src.Exec(ctx, `ROLLBACK`); err != nil {
		return 0, fmt.Errorf("data: move: end a snapshot: %w", err)
	}
	// The very changes applied, not "seq <= the last": a sequence number
	// is taken at the insert, not the commit, so a lower one may commit
	// after the snapshot was read.
	seqs := make([]int64, len(changes))
	for i, c := range changes {
		seqs[i] = c.seq
	}
	if _, err := src.Exec(ctx, `DELETE FROM `+moveSchema+`.changes WHERE tenant_id = $1 AND seq = ANY($2)`, string(id), seqs); err != nil {
		return 0, fmt.Errorf("data: move: forget applied changes: %w", err)
	}
	return int64(len(changes)), nil
}

// inKeys is "(key) IN ((…), (…))" for keys of t.
// The keys are a VALUES list the planner joins (a semi-join on the key's
// index), not a list of row comparisons it would test row by row.
func (t table) inKeys(keys [][]string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = t.keyLiteral(k)
	}
	return `(` + t.keyList() + `) IN (SELECT * FROM (VALUES ` + strings.Join(parts, ", ") + `) AS bulkhead_keys)`
}

// deleteGone deletes from dst the rows of keys that src no longer has.
func deleteGone(ctx context.Context, src *pgx.Conn, dst pgx.Tx, srcSchema, dstSchema string, t table, id tenant.ID, keys [][]string) error {
	if len(keys) == 0 {
		return nil
	}
	texts := make([]string, len(t.key))
	for i, k := range t.key {
		texts[i] = ident(k) + "::text"
	}
	rows, err := src.Query(ctx, `SELECT ARRAY[`+strings.Join(texts, ", ")+`] FROM `+ident(srcSchema, t.name)+
		` WHERE tenant_id = $1 AND `+t.inKeys(keys), string(id))
	if err != nil {
		return fmt.Errorf("data: move: read %s: %w", t.name, err)
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		return fmt.Errorf("data: move: read %s: %w", t.name, err)
	}
	var gone [][]string
	for _, k := range keys {
		if !slices.ContainsFunc(present, func(p []string) bool { return slices.Equal(p, k) }) {
			gone = append(gone, k)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if _, err := dst.Exec(ctx, `DELETE FROM `+ident(dstSchema, t.name)+` WHERE tenant_id = $1 AND `+t.inKeys(gone), string(id)); err != nil {
		return fmt.Errorf("data: move: delete from %s: %w", t.name, err)
	}
	return nil
}

// normalizeKeys turns keys recorded by the capture (to_jsonb ->> text,
// where a timestamp has a 'T') into the server's ::text form of the same
// values, the form the rows are read back in, without duplicates.
func normalizeKeys(ctx context.Context, conn *pgx.Conn, t table, keys [][]string) ([][]string, error) {
	aliases := make([]string, len(t.key))
	texts := make([]string, len(t.key))
	for i := range t.key {
		aliases[i] = fmt.Sprintf("k%d", i)
		texts[i] = aliases[i] + "::text"
	}
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = t.keyLiteral(k)
	}
	rows, err := conn.Query(ctx, `SELECT DISTINCT ARRAY[`+strings.Join(texts, ", ")+`] FROM (VALUES `+strings.Join(vals, ", ")+
		`) AS v(`+strings.Join(aliases, ", ")+`)`)
	if err != nil {
		return nil, fmt.Errorf("data: move: read recorded keys of %s: %w", t.name, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		return nil, fmt.Errorf("data: move: read recorded keys of %s: %w", t.name, err)
	}
	return out, nil
}

// upsertKeys copies the source's rows of keys into dst: inserted, or
// updated in place (a delete and insert would fire ON DELETE CASCADE).
func upsertKeys(ctx context.Context, src *pgx.Conn, dst pgx.Tx, srcSchema, dstSchema string, t table, id tenant.ID, keys [][]string) error {
	if len(keys) == 0 {
		return nil
	}
	var buf bytes.Buffer
	tag, err := src.PgConn().CopyTo(ctx, &buf, `COPY (SELECT `+t.colList()+` FROM `+ident(srcSchema, t.name)+
		` WHERE tenant_id = `+quote(string(id))+` AND `+t.inKeys(keys)+`) TO STDOUT`)
	if err != nil {
		return fmt.Errorf("data: move: read %s: %w", t.name, err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	return loadRows(ctx, dst, dstSchema, t, id, buf.Bytes(), true)
}

// loadRows writes rows (COPY text of t's columns) into t on the target,
// in tx: through a temporary table, since COPY FROM refuses a table under
// row-level security (a pool target); with upsert, a row whose key is
// there already is updated in place (a delete and insert would fire ON
// DELETE CASCADE).
func loadRows(ctx context.Context, tx pgx.Tx, dstSchema string, t table, id tenant.ID, rows []byte, upsert bool) error {
	const stage = "bulkhead_move_stage"
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE `+stage+` ON COMMIT DROP AS SELECT `+t.colList()+` FROM `+ident(dstSchema, t.name)+` WITH NO DATA`); err != nil {
		return fmt.Errorf("data: move: stage %s: %w", t.name, err)
	}
	staged, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(rows), `COPY `+stage+` FROM STDIN`)
	if err != nil {
		return fmt.Errorf("data: move: stage %s: %w", t.name, err)
	}
	conflict := ""
	if upsert {
		// Only the tenant's own row is updated in place: a key that meets
		// another tenant's row updates nothing, and the count below
		// refuses the move rather than take that row over (row-level
		// security would refuse it too, but not for an admin role that
		// bypasses it).
		sets := make([]string, 0, len(t.cols))
		for _, c := range t.cols {
			if !slices.Contains(t.key, c) {
				sets = append(sets, ident(c)+" = EXCLUDED."+ident(c))
			}
		}
		if len(sets) == 0 {
			sets = append(sets, "tenant_id = EXCLUDED.tenant_id")
		}
		conflict = ` ON CONFLICT (` + t.keyList() + `) DO UPDATE SET ` + strings.Join(sets, ", ") +
			` WHERE ` + ident(dstSchema, t.name) + `.tenant_id = ` + quote(string(id))
	}
	tag, err := tx.Exec(ctx, `INSERT INTO `+ident(dstSchema, t.name)+` (`+t.colList()+`) SELECT `+t.colList()+` FROM `+stage+
		` WHERE tenant_id = `+quote(string(id))+conflict)
	if err != nil {
		return fmt.Errorf("data: move: write %s: %w", t.name, err)
	}
	if tag.RowsAffected() != staged.RowsAffected() {
		return moveRefused("%d of the tenant's rows of %s meet rows that are not the tenant's in the target: their keys are taken",
			staged.RowsAffected()-tag.RowsAffected(), t.name)
	}
	if _, err := tx.Exec(ctx, `DROP TABLE `+stage); err != nil {
		return fmt.Errorf("data: move: unstage %s: %w", t.name, err)
	}
	return nil
}

// pendingChanges counts tenant id's recorded changes not yet applied: the
// lag of the copy.
func pendingChanges(ctx context.Context, src *pgx.Conn, id tenant.ID) (int64, error) {
	var n int64
	err := src.QueryRow(ctx, `SELECT count(*) FROM `+moveSchema+`.changes WHERE tenant_id = $1`, string(id)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("data: move: count changes: %w", err)
	}
	return n, nil
}

// tableSum is a table's row count and checksum for a tenant.
type tableSum struct {
	Rows int64  `json:"rows"`
	Sum  string `json:"checksum"`
}

// checksum sums, over tenant id's rows of t, a 64-bit hash of each row's
// text (the session's settings fix the text: sessionSQL), so the order of
// rows does not matter and neither side needs sorting.
func checksum(ctx context.Context, conn *pgx.Conn, schema string, t table, id tenant.ID) (tableSum, error) {
	var s tableSum
	err := conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(hashtextextended(ROW(`+t.colList()+`)::text, 0)::numeric), 0)::text FROM `+
		ident(schema, t.name)+` WHERE tenant_id = $1`, string(id)).Scan(&s.Rows, &s.Sum)
	if err != nil {
		return s, fmt.Errorf("data: move: checksum %s: %w", t.name, err)
	}
	return s, nil
}

// syncSequences moves each sequence a moved table's column defaults to in
// dst up to at least its source's value, so that ids made after the move
// do not meet the copied ones.
func syncSequences(ctx context.Context, src, dst *pgx.Conn, srcSchema, dstSchema string, tables []table) error {
	const seqs = `SELECT c.relname, a.attname, pg_get_serial_sequence(quote_ident($1) || '.' || quote_ident(c.relname), a.attname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE n.nspname = $1 AND c.relname = ANY($2) AND pg_get_serial_sequence(quote_ident($1) || '.' || quote_ident(c.relname), a.attname) IS NOT NULL`
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.name
	}
	read := func(conn *pgx.Conn, schema string) (map[string]string, error) {
		rows, err := conn.Query(ctx, seqs, schema, names)
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for rows.Next() {
			var tbl, col, seq string
			if err := rows.Scan(&tbl, &col, &seq); err != nil {
				rows.Close()
				return nil, err
			}
			out[tbl+"."+col] = seq
		}
		return out, rows.Err()
	}
	srcSeqs, err := read(src, srcSchema)
	if err != nil {
		return fmt.Errorf("data: move: list sequences: %w", err)
	}
	dstSeqs, err := read(dst, dstSchema)
	if err != nil {
		return fmt.Errorf("data: move: list sequences: %w", err)
	}
	for col, s := range srcSeqs {
		d, ok := dstSeqs[col]
		if !ok {
			continue
		}
		var last int64
		if err := src.QueryRow(ctx, `SELECT last_value FROM `+s).Scan(&last); err != nil {
			return fmt.Errorf("data: move: read sequence: %w", err)
		}
		if _, err := dst.Exec(ctx, `SELECT setval($1::regclass, greatest($2::bigint, (SELECT last_value FROM `+d+`)))`, d, last); err != nil {
			return fmt.Errorf("data: move: set sequence: %w", err)
		}
	}
	return nil
}

// fenceTimeout bounds the wait for the tenant's writers under way: past
// it the cutover gives up, lifts nothing it did not take, and is retried.
const fenceTimeout = 10 * time.Second

// takeFence takes tenant id's fence on the source conn (a connection of
// its own, which holds the lock for as long as it lives).
func takeFence(ctx context.Context, conn *pgx.Conn, id tenant.ID) error {
	ctx, cancel := context.WithTimeout(ctx, fenceTimeout)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+fenceKeySQL+`)`, string(id)); err != nil {
		return fmt.Errorf("data: move: take the write fence: %w", err)
	}
	return nil
}

// markMoved records in the source that tenant id has left it (moved
// true), or undoes that (false).
func markMoved(ctx context.Context, conn *pgx.Conn, id tenant.ID, moved bool) error {
	_, err := conn.Exec(ctx, `INSERT INTO `+moveSchema+`.fences (tenant_id, moved) VALUES ($1, $2)
		ON CONFLICT (tenant_id) DO UPDATE SET moved = EXCLUDED.moved`, string(id), moved)
	if err != nil {
		return fmt.Errorf("data: move: mark the tenant moved: %w", err)
	}
	return nil
}

// liftFence lets the fence go.
func liftFence(ctx context.Context, conn *pgx.Conn, id tenant.ID) error {
	_, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(`+fenceKeySQL+`)`, string(id))
	return err
}
