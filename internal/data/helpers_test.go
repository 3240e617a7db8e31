package data_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// recorder is a transport that keeps every answer's body, to look for
// secrets in all of them.
type recorder struct {
	mu     sync.Mutex
	bodies []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.bodies = append(r.bodies, string(b))
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.bodies, "\n")
}

// node is a test node with an application cluster.
type node struct {
	*apitest.Env
	app   storagetest.AppCluster
	op    *client.Client // the operator, recorded
	rec   *recorder
	log   *runtest.Log
	clock *clock.Fake
	// rootKey (base64) is the node's root key: another node on its
	// database is given it.
	rootKey string
}

// start is a node on the Bulkhead database dsn, its clock a Fake, its
// logs at debug level captured, and tenant tokens: "tok-<id>" is a
// service credential of tenant id.
func start(t *testing.T, dsn string, tenants ...string) *node {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	n := &node{app: storagetest.App(t), rec: &recorder{}, log: &runtest.Log{},
		clock: clock.NewFake(time.Now().UTC().Truncate(time.Microsecond)), rootKey: base64.StdEncoding.EncodeToString(key)}
	tokens := map[string]tenant.Context{}
	for _, id := range tenants {
		tokens["tok-"+id] = tenant.Context{TenantID: tenant.ID(id), Principal: "client:svc-" + id}
	}
	n.Env = apitest.New(t, dsn, apitest.Options{TenantTokens: tokens, Clock: n.clock, RootKey: n.rootKey,
		Logger: slog.New(slog.NewJSONHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	n.op = n.as(apitest.AdminToken)
	return n
}

// as is a recorded client that sends token.
func (n *node) as(token string) *client.Client {
	c := n.Client(token)
	c.HTTP = &http.Client{Transport: n.rec, Timeout: time.Minute}
	return c
}

// addCluster registers the node's application cluster as "app".
func (n *node) addCluster(t *testing.T) client.DataCluster {
	t.Helper()
	c, err := n.op.CreateCluster(t.Context(), client.CreateDataCluster{Name: "app", DSN: n.app.ServingDSN, AdminDSN: n.app.AdminDSN, Prefix: n.app.Prefix})
	if err != nil {
		t.Fatalf("create cluster: %v", err)
	}
	return c
}

// onboard creates tenant id in tier and waits for it to be active.
func (n *node) onboard(t *testing.T, id, tier string) {
	t.Helper()
	tn, err := n.op.CreateTenant(t.Context(), client.CreateTenant{ID: id, Tier: tier}, "")
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	if tn.Status != "active" {
		wfs, _ := n.op.TenantWorkflows(t.Context(), id)
		t.Fatalf("%s is %s after its create: %+v", id, tn.Status, wfs)
	}
}

// offboard deletes tenant id and waits for it to be deleted.
func (n *node) offboard(t *testing.T, id string) {
	t.Helper()
	if _, err := n.op.DeleteTenant(t.Context(), id); err != nil {
		t.Fatalf("delete %s: %v", id, err)
	}
	runtest.Eventually(t, id+" to be deleted", func() bool {
		tn, err := n.op.GetTenant(t.Context(), id)
		return err == nil && tn.Status == "deleted"
	})
}

// connect opens a connection to the application cluster with dsn, to
// database (the DSN's own if ""), as user with password (the DSN's if "").
func connect(t *testing.T, dsn, database, user, password string) (*pgx.Conn, error) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if database != "" {
		u.Path = "/" + database
	}
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	return pgx.Connect(t.Context(), u.String())
}

// mustConnect is connect that fails the test, closed when it ends.
func mustConnect(t *testing.T, dsn, database string) *pgx.Conn {
	t.Helper()
	c, err := connect(t, dsn, database, "", "")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// sqlState is err's SQLSTATE, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func queryBool(t *testing.T, c *pgx.Conn, q string, args ...any) bool {
	t.Helper()
	var b bool
	if err := c.QueryRow(t.Context(), q, args...).Scan(&b); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return b
}

func queryInt(t *testing.T, c *pgx.Conn, q string, args ...any) int {
	t.Helper()
	var n int
	if err := c.QueryRow(t.Context(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// wantCode fails t unless err is an API error with code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("%s: %v; want %s", what, err, code)
	}
}
