package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/data/migrate"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
	"github.com/bulkhead-dev/bulkhead/sdk/envelope"
)

// The three tenants of the tests, one in each placement.
var tiers = map[string]string{"pool-co": "basic", "bridge-co": "standard", "silo-co": "premium"}

// world is a Bulkhead node on SQLite, an application cluster on
// PostgreSQL with the notes migrations in every placement, the notes
// service over loopback HTTP, and tokens from Bulkhead's token endpoint.
type world struct {
	bulkhead *apitest.Env
	app      storagetest.AppCluster
	url      string // the notes service
	places   map[string]client.DataPlacement
	// tokens: two clients of each tenant ("<tenant>" and
	// "<tenant>/other"), with the scopes the service needs.
	tokens map[string]string
	log    *runtest.Log // the notes service's
	tiers  map[string]string
	server *server
}

// newWorld is a world of the three tenants of tiers.
func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldOf(t, tiers)
}

// newWorldOf is a world of the tenants of tenants (id → tier).
func newWorldOf(t *testing.T, tenants map[string]string) *world {
	t.Helper()
	ctx := t.Context()
	w := &world{app: storagetest.App(t), places: map[string]client.DataPlacement{}, tokens: map[string]string{}, log: &runtest.Log{},
		tiers: tenants}
	w.bulkhead = apitest.New(t, storagetest.DSN(t, storage.SQLite), apitest.Options{})
	op := w.bulkhead.Admin
	if _, err := op.CreateCluster(ctx, client.CreateDataCluster{Name: "app", DSN: w.app.ServingDSN,
		AdminDSN: w.app.AdminDSN, Prefix: w.app.Prefix}); err != nil {
		t.Fatalf("cluster add: %v", err)
	}
	policy, err := os.ReadFile("policy.cedar")
	if err != nil {
		t.Fatal(err)
	}
	for tid, tier := range tenants {
		if tn, err := op.CreateTenant(ctx, client.CreateTenant{ID: tid, Tier: tier}, ""); err != nil || tn.Status != "active" {
			t.Fatalf("create %s: %+v %v", tid, tn, err)
		}
		p, err := op.GetPlacement(ctx, tid)
		if err != nil || p.Status != "ready" {
			t.Fatalf("placement of %s: %+v %v", tid, p, err)
		}
		w.places[tid] = p
		if _, err := op.CreatePolicy(ctx, tid, client.PolicyInput{Statement: string(policy)}); err != nil {
			t.Fatalf("policy of %s: %v", tid, err)
		}
		w.tokens[tid] = w.token(t, tid)
		w.tokens[tid+"/other"] = w.token(t, tid)
	}
	w.migrate(t)

	s, err := newServer(config{Bulkhead: w.bulkhead.URL, Cluster: "app", DSN: w.app.ServingDSN}, slog.New(slog.NewJSONHandler(w.log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for who, tok := range w.tokens {
			if strings.Contains(w.log.String(), tok) {
				t.Errorf("the service's log holds %s's token", who)
			}
		}
		if strings.Contains(w.log.String(), "secret plans") {
			t.Error("the service's log holds a note's body")
		}
	})
	t.Cleanup(s.Close)
	w.server = s
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.url = "http://" + ln.Addr().String()
	runtest.Go(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
	return w
}

// token registers a client of tenant tid and returns a token from
// Bulkhead's token endpoint (a silo tenant's own issuer for silo-co).
func (w *world) token(t *testing.T, tid string) string {
	t.Helper()
	scopes := []string{"kms:generate-data-key", "kms:decrypt"}
	c, err := w.bulkhead.Admin.CreateOAuthClient(t.Context(), tid, client.CreateOAuthClient{Name: "notes-" + tid,
		GrantTypes: []string{"client_credentials"}, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	issuer := w.bulkhead.URL
	if w.tiers[tid] == "premium" {
		issuer += "/t/" + tid
	}
	tok, err := (&clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		TokenURL: issuer + "/oauth/token", Scopes: scopes}).Token(t.Context())
	if err != nil {
		t.Fatalf("token of %s: %v", tid, err)
	}
	return tok.AccessToken
}

// migrate applies migrations/*.sql to the pool and to every tenant's
// placement, as `bulkhead cluster migrate` does.
func (w *world) migrate(t *testing.T) {
	t.Helper()
	files, err := migrate.Load(os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	conns, err := migrate.NewAdminConns(w.app.AdminDSN, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	var targets []migrate.Target
	for tid, p := range w.places {
		targets = append(targets, migrate.Target{TenantID: tid, Model: p.Model, Database: p.Database, Schema: p.Schema, Role: p.Role})
	}
	c := migrate.Cluster{Databases: conns, SharedDatabase: w.app.Database, Prefix: w.app.Prefix, ServingRole: userOf(t, w.app.ServingDSN)}
	if _, err := migrate.Run(t.Context(), c, files, targets, migrate.Options{}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

func userOf(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.User.Username()
}

// call sends a request to the notes service with token (none if "") and
// returns the status and the body.
func (w *world) call(t *testing.T, token, method, path, body string) (int, []byte) {
	t.Helper()
	st, _, b := w.do(t, token, method, path, body)
	return st, b
}

// do is call, with the answer's header too.
func (w *world) do(t *testing.T, token, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	return send(t, w.url, token, method, path, body)
}

// send sends a request to the service at base with token (none if "")
// and returns the answer's status, header and body.
func send(t *testing.T, base, token, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// create makes a note as who and returns it.
func (w *world) create(t *testing.T, who, body string) note {
	t.Helper()
	in, _ := json.Marshal(map[string]string{"body": body})
	st, b := w.call(t, w.tokens[who], "POST", "/notes", string(in))
	if st != http.StatusCreated {
		t.Fatalf("create as %s: %d %s", who, st, b)
	}
	var n note
	if err := json.Unmarshal(b, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// list returns who's notes.
func (w *world) list(t *testing.T, who string) []note {
	t.Helper()
	st, b := w.call(t, w.tokens[who], "GET", "/notes", "")
	if st != http.StatusOK {
		t.Fatalf("list as %s: %d %s", who, st, b)
	}
	var out struct{ Items []note }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// admin runs sql as the cluster's admin role on database (the shared one
// if "").
func (w *world) admin(t *testing.T, database string) *pgx.Conn {
	t.Helper()
	u, err := url.Parse(w.app.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	if database != "" {
		u.Path = "/" + database
	}
	c, err := pgx.Connect(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// table is tenant tid's notes table, qualified, and a connection to its
// database as the admin role. Row-level security is FORCEd in the pool,
// so it binds the admin too, which owns the table: the connection is set
// to tid for the pool's rows.
func (w *world) table(t *testing.T, tid string) (*pgx.Conn, string) {
	t.Helper()
	p := w.places[tid]
	db := ""
	if p.Model == "silo" {
		db = p.Database
	}
	c := w.admin(t, db)
	if _, err := c.Exec(t.Context(), "SELECT set_config('app.tenant_id', $1, false)", tid); err != nil {
		t.Fatal(err)
	}
	return c, pgx.Identifier{p.Schema, "notes"}.Sanitize()
}

func TestNotes(t *testing.T) {
	w := newWorld(t)
	mine := map[string]note{}
	for tid := range tiers {
		mine[tid] = w.create(t, tid, "secret plans of "+tid)
	}
	t.Run("each tenant sees only its own", func(t *testing.T) {
		for tid := range tiers {
			got := w.list(t, tid)
			if len(got) != 1 || got[0].ID != mine[tid].ID || got[0].Body != "secret plans of "+tid {
				t.Errorf("%s lists %+v", tid, got)
			}
			// Its other client, a member of the tenant, reads it too.
			st, b := w.call(t, w.tokens[tid+"/other"], "GET", "/notes/"+mine[tid].ID, "")
			if st != http.StatusOK || !strings.Contains(string(b), "secret plans of "+tid) {
				t.Errorf("%s/other reads its tenant's note: %d %s", tid, st, b)
			}
		}
	})
	t.Run("another tenant's note is a missing note", func(t *testing.T) {
		missing := ids.New(notePrefix)
		for a := range tiers {
			for b := range tiers {
				if a == b {
					continue
				}
				for _, method := range []string{"GET", "DELETE"} {
					st, got := w.call(t, w.tokens[a], method, "/notes/"+mine[b].ID, "")
					wantSt, want := w.call(t, w.tokens[a], method, "/notes/"+missing, "")
					if st != http.StatusNotFound || wantSt != st || !bytes.Equal(got, want) {
						t.Errorf("%s %s's note as %s: %d %s; a missing note: %d %s", method, b, a, st, got, wantSt, want)
					}
				}
			}
		}
		for tid := range tiers { // nothing was deleted
			if got := w.list(t, tid); len(got) != 1 {
				t.Errorf("%s has %d notes after the others' deletes", tid, len(got))
			}
		}
	})
	t.Run("the raw database holds ciphertext only", func(t *testing.T) {
		for tid := range tiers {
			conn, table := w.table(t, tid)
			var body []byte
			var tenant string
			if err := conn.QueryRow(t.Context(), "SELECT tenant_id, body FROM "+table+" WHERE id = $1", mine[tid].ID).Scan(&tenant, &body); err != nil {
				t.Fatalf("%s's row: %v", tid, err)
			}
			if tenant != tid || bytes.Contains(body, []byte("secret")) || bytes.Contains(body, []byte(tid)) {
				t.Errorf("%s's row: tenant %q, body %q", tid, tenant, body)
			}
		}
	})
	t.Run("only the author deletes", func(t *testing.T) {
		for tid := range tiers {
			n := w.create(t, tid, "to be deleted")
			if st, b := w.call(t, w.tokens[tid+"/other"], "DELETE", "/notes/"+n.ID, ""); st != http.StatusForbidden || !strings.Contains(string(b), `"not_allowed"`) {
				t.Errorf("%s/other deletes %s's note: %d %s", tid, tid, st, b)
			}
			if st, b := w.call(t, w.tokens[tid], "DELETE", "/notes/"+n.ID, ""); st != http.StatusNoContent {
				t.Errorf("%s deletes its note: %d %s", tid, st, b)
			}
			if st, _ := w.call(t, w.tokens[tid], "GET", "/notes/"+n.ID, ""); st != http.StatusNotFound {
				t.Errorf("%s reads its deleted note: %d", tid, st)
			}
		}
	})
}

// TestCopiedBodyDoesNotDecrypt copies a body, in the database, to another
// tenant's row and to another row of the same tenant: neither decrypts,
// and no answer carries the plaintext.
func TestCopiedBodyDoesNotDecrypt(t *testing.T) {
	w := newWorld(t)
	a, b := "pool-co", "bridge-co"
	na := w.create(t, a, "only for pool-co")
	nb := w.create(t, b, "bridge-co's own")
	na2 := w.create(t, a, "pool-co's second")
	var sealed []byte
	connA, tableA := w.table(t, a)
	if err := connA.QueryRow(t.Context(), "SELECT body FROM "+tableA+" WHERE id = $1", na.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	connB, tableB := w.table(t, b)
	for _, c := range []struct {
		who, id string
		conn    *pgx.Conn
		table   string
	}{{b, nb.ID, connB, tableB}, {a, na2.ID, connA, tableA}} {
		if _, err := c.conn.Exec(t.Context(), "UPDATE "+c.table+" SET body = $1 WHERE id = $2", sealed, c.id); err != nil {
			t.Fatal(err)
		}
		st, got := w.call(t, w.tokens[c.who], "GET", "/notes/"+c.id, "")
		if st != http.StatusInternalServerError || bytes.Contains(got, []byte("only for")) {
			t.Errorf("%s reads a row holding %s's copied body: %d %s", c.who, a, st, got)
		}
		st, got = w.call(t, w.tokens[c.who], "GET", "/notes", "")
		if st == http.StatusOK || bytes.Contains(got, []byte("only for")) {
			t.Errorf("%s lists a row holding %s's copied body: %d %s", c.who, a, st, got)
		}
	}
	// Another tenant's data key does not unwrap in this tenant's context;
	// the same tenant's key, for another row, fails the field's binding.
	for _, want := range []string{"400 invalid_ciphertext", envelope.ErrFieldMismatch.Error()} {
		if !strings.Contains(w.log.String(), want) {
			t.Errorf("the service's log does not say %q:\n%s", want, w.log)
		}
	}
	// The original still decrypts where it belongs.
	if st, got := w.call(t, w.tokens[a], "GET", "/notes/"+na.ID, ""); st != http.StatusOK || !bytes.Contains(got, []byte("only for pool-co")) {
		t.Errorf("the original: %d %s", st, got)
	}
}

// TestHostileRequests: what a caller without a tenant's credential, or
// with one and bad intentions, sends.
func TestHostileRequests(t *testing.T) {
	w := newWorld(t)
	n := w.create(t, "pool-co", "pool-co's")
	for _, c := range []struct {
		name, token, method, path, body string
		status                          int
		code                            string
	}{
		{"no token", "", "GET", "/notes", "", http.StatusUnauthorized, ""},
		{"a forged token", "eyJhbGciOiJub25lIn0.eyJ0ZW5hbnRfaWQiOiJwb29sLWNvIn0.", "GET", "/notes", "", http.StatusUnauthorized, ""},
		{"another tenant's id in the body", w.tokens["bridge-co"], "POST", "/notes", `{"body":"x","tenant_id":"pool-co"}`, http.StatusBadRequest, "invalid_json"},
		{"two objects", w.tokens["bridge-co"], "POST", "/notes", `{"body":"x"}{"body":"y"}`, http.StatusBadRequest, "invalid_json"},
		{"an empty body", w.tokens["bridge-co"], "POST", "/notes", `{"body":""}`, http.StatusBadRequest, "invalid_body"},
		{"a body too large", w.tokens["bridge-co"], "POST", "/notes", `{"body":"` + strings.Repeat("x", maxBody+1) + `"}`, http.StatusBadRequest, "invalid_body"},
		{"SQL in the id", w.tokens["bridge-co"], "GET", "/notes/" + url.PathEscape("x' OR '1'='1"), "", http.StatusNotFound, "note_not_found"},
		{"a note id with a tenant suffix", w.tokens["bridge-co"], "GET", "/notes/" + n.ID + "?tenant=pool-co", "", http.StatusNotFound, "note_not_found"},
	} {
		st, b := w.call(t, c.token, c.method, c.path, c.body)
		if st != c.status || (c.code != "" && !strings.Contains(string(b), `"code":"`+c.code+`"`)) {
			t.Errorf("%s: %d %s; want %d %s", c.name, st, b, c.status, c.code)
		}
	}
	// A token without the KMS scopes gets Bulkhead's refusal, not a note.
	cl, err := w.bulkhead.Admin.CreateOAuthClient(t.Context(), "pool-co", client.CreateOAuthClient{Name: "no-scopes",
		GrantTypes: []string{"client_credentials"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := (&clientcredentials.Config{ClientID: cl.ClientID, ClientSecret: cl.ClientSecret,
		TokenURL: w.bulkhead.URL + "/oauth/token"}).Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st, b := w.call(t, tok.AccessToken, "GET", "/notes/"+n.ID, ""); st != http.StatusForbidden || bytes.Contains(b, []byte("pool-co's")) {
		t.Errorf("a token without kms scopes reads a note: %d %s", st, b)
	}
	// The operator's token is not a tenant's.
	if st, b := w.call(t, apitest.AdminToken, "GET", "/notes", ""); st != http.StatusUnauthorized {
		t.Errorf("the operator's token: %d %s", st, b)
	}
}
