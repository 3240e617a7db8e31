package main

// A deliberately broken variant of the notes service, for the tests only:
// the fixture on which a prober of tenant isolation (bulkhead probe) must
// find each defect, as the real service is the one on which it must find
// none. TestBrokenFixtureHasItsDefects shows that the defects are there,
// and that the real service, on the same data, has none of them.

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

// The two tenants of the fixture, both in the pool: their notes are rows
// of one table, told apart by tenant_id only.
const (
	poolA = "pool-co"
	poolB = "pool-two"
)

// sealedBody stands for a body the broken service cannot decrypt: it is
// sealed under another tenant's key. The leak is the note's existence,
// id, author and date, not its text.
const sealedBody = "[sealed]"

// broken is the notes service with three classic multi-tenant bugs. It
// serves the real service's routes with its handlers, except for three,
// which read the pool's notes table through unscoped: a connection that
// is not the caller's tenant's transaction and sees every pool tenant's
// rows (see unscopedPool). Everything else (the token middleware, the
// policy decisions, the encryption) is the real service's.
type broken struct {
	*server
	unscoped *pgxpool.Pool
	table    string // the pool's notes table, qualified
}

// newBrokenHandler is the broken service's HTTP API, behind the same
// sdk/auth middleware (s's validator) as the real one.
func newBrokenHandler(s *server, unscoped *pgxpool.Pool, table string) http.Handler {
	b := &broken{server: s, unscoped: unscoped, table: table}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		h := rt.h
		switch rt.pattern {
		case "GET /notes/{id}":
			h = b.get
		case "GET /notes":
			h = b.list
		case "DELETE /notes/{id}":
			h = b.delete
		}
		mux.HandleFunc(rt.pattern, s.handle(h))
	}
	return s.validator.Middleware(mux)
}

// lookup finds note id in the pool by its id alone, whoever's it is: the
// missing `tenant_id = <the caller's>` of the classic bug. A note id is
// unique per tenant only; the caller's own comes first.
func (b *broken) lookup(ctx context.Context, c *caller, id string) (tenant string, n row, err error) {
	err = b.unscoped.QueryRow(ctx, `SELECT tenant_id, author, body, created_at FROM `+b.table+
		` WHERE id = $1 ORDER BY tenant_id = $2 DESC LIMIT 1`, id, c.claims.TenantID).Scan(&tenant, &n.author, &n.body, &n.createdAt)
	n.id = id
	return tenant, n, err
}

// get is defect (a), a cross-tenant read: GET /notes/{id} reads the note
// by its id without the tenant check, and answers another tenant's note
// 200 with its id, author and date (the body, sealed under the other
// tenant's key, as sealedBody). It even asks the caller's tenant's
// policies, which allow a member to read any Note: a policy decision is
// no tenant check. The caller's own note, or none, is the real service's
// answer.
func (b *broken) get(ctx context.Context, c *caller, r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	tenant, n, err := b.lookup(ctx, c, id)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && tenant == c.claims.TenantID {
		return b.server.get(ctx, c, r)
	}
	if err != nil {
		return 0, nil, err
	}
	if err := b.authorize(ctx, c, "read", noteEntity(n)); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, note{ID: n.id, Author: n.author, Body: sealedBody, CreatedAt: n.createdAt}, nil
}

// list is defect (b), a list leak: GET /notes lists the pool's table
// without the tenant filter, every pool tenant's notes in one list (the
// caller's own with their bodies, the others' with sealedBody).
func (b *broken) list(ctx context.Context, c *caller, r *http.Request) (int, any, error) {
	if err := b.authorize(ctx, c, "list", notebook()); err != nil {
		return 0, nil, err
	}
	rs, err := b.unscoped.Query(ctx, `SELECT tenant_id, id, author, body, created_at FROM `+b.table+
		` ORDER BY created_at DESC, id LIMIT $1`, maxListed)
	if err != nil {
		return 0, nil, err
	}
	type tenantRow struct {
		tenant string
		row
	}
	rows, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (tenantRow, error) {
		var n tenantRow
		err := r.Scan(&n.tenant, &n.id, &n.author, &n.body, &n.createdAt)
		return n, err
	})
	if err != nil {
		return 0, nil, err
	}
	out := struct {
		Items []note `json:"items"`
	}{Items: make([]note, 0, len(rows))}
	for _, n := range rows {
		if n.tenant != c.claims.TenantID {
			out.Items = append(out.Items, note{ID: n.id, Author: n.author, Body: sealedBody, CreatedAt: n.createdAt})
			continue
		}
		d, err := b.open(ctx, c, n.row)
		if err != nil {
			return 0, nil, err
		}
		out.Items = append(out.Items, d)
	}
	return http.StatusOK, out, nil
}

// errNotYours is the broken delete's answer to another tenant's note.
var errNotYours = &problem{http.StatusForbidden, "not_your_note", "this note belongs to someone else"}

// delete is defect (c), an existence oracle: DELETE /notes/{id} looks the
// note up by its id alone and, when it is another tenant's, answers 403
// not_your_note, where a note that exists nowhere gets the real service's
// 404: the difference tells the caller that the id exists in another
// tenant. The caller's own note, or none, is the real service's delete.
func (b *broken) delete(ctx context.Context, c *caller, r *http.Request) (int, any, error) {
	tenant, _, err := b.lookup(ctx, c, r.PathValue("id"))
	if errors.Is(err, pgx.ErrNoRows) || err == nil && tenant == c.claims.TenantID {
		return b.server.delete(ctx, c, r)
	}
	if err != nil {
		return 0, nil, err
	}
	return 0, nil, errNotYours
}

// unscopedPool is the broken service's unscoped connection: a role of the
// application cluster that reads the pool's notes table with a row-level
// security policy that lets it see every tenant's rows (a "reporting"
// role, USING (true)). No role the world has will do: the serving role
// reaches rows only in a tenant's transaction, and the pool FORCEs
// row-level security on the admin role too, which owns the table; a role
// that bypasses row-level security takes a superuser to make. The role's
// name begins with the cluster's prefix, so the world's cleanup drops it.
func (w *world) unscopedPool(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := t.Context()
	p := w.places[poolA]
	if p.Model != "pool" {
		t.Fatalf("%s is placed in %q, not the pool", poolA, p.Model)
	}
	table := pgx.Identifier{p.Schema, "notes"}.Sanitize()
	role, password := w.app.Prefix+"reporting", ids.Secret("pw")
	qrole := pgx.Identifier{role}.Sanitize()
	admin := w.admin(t, "")
	for _, stmt := range []string{
		"CREATE ROLE " + qrole + " LOGIN NOINHERIT PASSWORD " + quoteLiteral(password),
		"GRANT CONNECT ON DATABASE " + pgx.Identifier{w.app.Database}.Sanitize() + " TO " + qrole,
		"GRANT USAGE ON SCHEMA " + pgx.Identifier{p.Schema}.Sanitize() + " TO " + qrole,
		"GRANT SELECT ON " + table + " TO " + qrole,
		"CREATE POLICY reporting_sees_all ON " + table + " FOR SELECT TO " + qrole + " USING (true)",
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("the unscoped role: %v", err)
		}
	}
	u, err := url.Parse(w.app.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, password)
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, table
}

// quoteLiteral is s as an SQL string literal (CREATE ROLE … PASSWORD
// takes no parameter).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// brokenWorld is a world of the two pool tenants, poolA and poolB,
// serving the real service at w.url and the broken one, on the same
// server (validator, database, keys), at the returned URL.
func newBrokenWorld(t *testing.T) (*world, string) {
	t.Helper()
	w := newWorldOf(t, map[string]string{poolA: "basic", poolB: "basic"})
	if w.places[poolB].Model != "pool" {
		t.Fatalf("%s is placed in %q, not the pool", poolB, w.places[poolB].Model)
	}
	unscoped, table := w.unscopedPool(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: newBrokenHandler(w.server, unscoped, table), ReadHeaderTimeout: 10 * time.Second}
	runtest.Go(t, func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return w, "http://" + ln.Addr().String()
}

// listedIDs are the ids of a list's answer, in its order.
func listedIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var out struct{ Items []note }
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("a list: %v: %s", err, body)
	}
	var listed []string
	for _, n := range out.Items {
		listed = append(listed, n.ID)
	}
	return listed
}

// TestBrokenFixtureHasItsDefects shows, with plain HTTP calls of the two
// pool tenants, that each defect of the broken service is there, and
// that the real service, on the same data and with the same tokens, has
// none of them.
func TestBrokenFixtureHasItsDefects(t *testing.T) {
	w, brokenURL := newBrokenWorld(t)
	real := func(token, method, path string) (int, []byte) {
		st, _, b := send(t, w.url, token, method, path, "")
		return st, b
	}
	bad := func(token, method, path string) (int, []byte) {
		st, _, b := send(t, brokenURL, token, method, path, "")
		return st, b
	}
	a, b := w.tokens[poolA], w.tokens[poolB]
	na := w.create(t, poolA, "secret plans of "+poolA)
	nb := w.create(t, poolB, "secret plans of "+poolB)
	missing := ids.New(notePrefix)

	t.Run("a: a cross-tenant read", func(t *testing.T) {
		st, got := bad(b, "GET", "/notes/"+na.ID)
		var n note
		if st != http.StatusOK || json.Unmarshal(got, &n) != nil || n.ID != na.ID || n.Author != na.Author || n.Body != sealedBody {
			t.Errorf("the broken service: %s reads %s's note: %d %s", poolB, poolA, st, got)
		}
		if strings.Contains(string(got), "secret plans") {
			t.Errorf("the broken service decrypted another tenant's body: %s", got)
		}
		st, got = real(b, "GET", "/notes/"+na.ID)
		wantSt, want := real(b, "GET", "/notes/"+missing)
		if st != http.StatusNotFound || wantSt != st || string(got) != string(want) {
			t.Errorf("the real service: %s reads %s's note: %d %s; a missing note: %d %s", poolB, poolA, st, got, wantSt, want)
		}
		// Its own note, a missing one and a malformed id are the real
		// service's answers.
		for _, path := range []string{"/notes/" + nb.ID, "/notes/" + missing, "/notes/nope"} {
			st, got := bad(b, "GET", path)
			wantSt, want := real(b, "GET", path)
			if st != wantSt || string(got) != string(want) {
				t.Errorf("GET %s: the broken service %d %s; the real one %d %s", path, st, got, wantSt, want)
			}
		}
	})

	t.Run("b: a list leak", func(t *testing.T) {
		st, got := bad(b, "GET", "/notes")
		if listed := listedIDs(t, got); st != http.StatusOK || !slices.Contains(listed, na.ID) || !slices.Contains(listed, nb.ID) {
			t.Errorf("the broken service: %s's list does not hold %s's note: %d %s", poolB, poolA, st, got)
		}
		if strings.Contains(string(got), "secret plans of "+poolA) || !strings.Contains(string(got), "secret plans of "+poolB) {
			t.Errorf("the broken service's list: %s", got)
		}
		for who, want := range map[string]string{poolA: na.ID, poolB: nb.ID} {
			st, got := real(w.tokens[who], "GET", "/notes")
			if listed := listedIDs(t, got); st != http.StatusOK || !slices.Equal(listed, []string{want}) {
				t.Errorf("the real service: %s lists %d %s", who, st, got)
			}
		}
	})

	t.Run("c: an existence oracle", func(t *testing.T) {
		st, got := bad(b, "DELETE", "/notes/"+na.ID)
		if st != http.StatusForbidden || !strings.Contains(string(got), `"code":"not_your_note"`) {
			t.Errorf("the broken service: %s deletes %s's note: %d %s", poolB, poolA, st, got)
		}
		for _, path := range []string{"/notes/" + missing, "/notes/nope"} {
			st, got := bad(b, "DELETE", path)
			wantSt, want := real(b, "DELETE", path)
			if st != http.StatusNotFound || st != wantSt || string(got) != string(want) {
				t.Errorf("DELETE %s: the broken service %d %s; the real one %d %s", path, st, got, wantSt, want)
			}
		}
		st, got = real(b, "DELETE", "/notes/"+na.ID)
		wantSt, want := real(b, "DELETE", "/notes/"+missing)
		if st != http.StatusNotFound || st != wantSt || string(got) != string(want) {
			t.Errorf("the real service: %s deletes %s's note: %d %s; a missing note: %d %s", poolB, poolA, st, got, wantSt, want)
		}
		// No delete of another tenant's note deleted it.
		if st, got := real(a, "GET", "/notes/"+na.ID); st != http.StatusOK || !strings.Contains(string(got), "secret plans of "+poolA) {
			t.Errorf("%s's note after the deletes: %d %s", poolA, st, got)
		}
		// The caller's own note is the real service's delete.
		if st, got := bad(b, "DELETE", "/notes/"+nb.ID); st != http.StatusNoContent {
			t.Errorf("the broken service: %s deletes its own note: %d %s", poolB, st, got)
		}
		if st, _ := real(b, "GET", "/notes/"+nb.ID); st != http.StatusNotFound {
			t.Errorf("%s's note after its delete: %d", poolB, st)
		}
	})

	t.Run("the rest is the real service's", func(t *testing.T) {
		// The middleware: no token, the same 401.
		st, got := bad("", "GET", "/notes")
		wantSt, want := real("", "GET", "/notes")
		if st != http.StatusUnauthorized || st != wantSt || string(got) != string(want) {
			t.Errorf("no token: the broken service %d %s; the real one %d %s", st, got, wantSt, want)
		}
		// Create is the real handler: a note made on the broken service
		// is the caller's, on the real one.
		st, _, body := send(t, brokenURL, a, "POST", "/notes", `{"body":"made on the broken one"}`)
		var n note
		if st != http.StatusCreated || json.Unmarshal(body, &n) != nil {
			t.Fatalf("create on the broken service: %d %s", st, body)
		}
		if st, got := real(a, "GET", "/notes/"+n.ID); st != http.StatusOK || !strings.Contains(string(got), "made on the broken one") {
			t.Errorf("the note made on the broken service, on the real one: %d %s", st, got)
		}
	})
}
