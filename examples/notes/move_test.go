package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// moveWorld is the notes service behind Bulkhead's gateway: pool and
// bridge tenants reach the shared instance, the silo tenant "movco" an
// instance of its own (the route's silo upstream), both on one
// application cluster whose migrations are registered with Bulkhead.
type moveWorld struct {
	*world
	shared, own *runtest.Log // the two instances' logs
}

func newMoveWorld(t *testing.T) *moveWorld {
	t.Helper()
	ctx := t.Context()
	lnShared, lnOwn := listen(t), listen(t)
	w := &moveWorld{world: &world{app: storagetest.App(t), places: map[string]client.DataPlacement{}, tokens: map[string]string{}, log: &runtest.Log{}},
		shared: &runtest.Log{}, own: &runtest.Log{}}
	w.bulkhead = apitest.New(t, storagetest.DSN(t, storage.SQLite), apitest.Options{GatewayAppDomain: "app.test",
		GatewayRoutes: []gateway.Route{{ID: "notes", Host: "*.app.test", PathPrefix: "/", Upstream: "http://" + lnShared.Addr().String(),
			Silo: map[tenant.ID]string{"movco": "http://" + lnOwn.Addr().String()}}}})
	op := w.bulkhead.Admin
	if _, err := op.CreateCluster(ctx, client.CreateDataCluster{Name: "app", DSN: w.app.ServingDSN, AdminDSN: w.app.AdminDSN, Prefix: w.app.Prefix}); err != nil {
		t.Fatal(err)
	}
	var files []client.DataMigrationFile
	entries, err := fs.Glob(os.DirFS("migrations"), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range entries {
		b, err := os.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, client.DataMigrationFile{Name: name, SQL: string(b)})
	}
	if _, err := op.RegisterMigrations(ctx, "app", client.RegisterDataMigrations{Files: files}); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "the pool to be migrated", func() bool {
		st, err := op.MigrationStatus(ctx, "app")
		return err == nil && len(st.Places) == 1 && st.Places[0].Pending == 0 && st.Places[0].Error == ""
	})
	policy, err := os.ReadFile("policy.cedar")
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range []string{"movco", "bystander"} {
		if tn, err := op.CreateTenant(ctx, client.CreateTenant{ID: tid, Tier: "basic"}, ""); err != nil || tn.Status != "active" {
			t.Fatalf("create %s: %+v %v", tid, tn, err)
		}
		if _, err := op.CreatePolicy(ctx, tid, client.PolicyInput{Statement: string(policy)}); err != nil {
			t.Fatal(err)
		}
		w.tokens[tid] = w.token(t, tid)
	}
	for _, inst := range []struct {
		ln  net.Listener
		log *runtest.Log
	}{{lnShared, w.shared}, {lnOwn, w.own}} {
		s, err := newServer(config{Bulkhead: w.bulkhead.URL, Cluster: "app", DSN: w.app.ServingDSN}, slog.New(slog.NewJSONHandler(inst.log, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		runtest.Go(t, func(ctx context.Context) error { return s.Serve(ctx, inst.ln) })
	}
	return w
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// edge sends a request for tenant tid's subdomain through the gateway and
// returns the status and body, or an error for a failed exchange.
func (w *moveWorld) edge(ctx context.Context, tid, method, path, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.bulkhead.GatewayURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Host = tid + ".app.test"
	req.Header.Set("Authorization", "Bearer "+w.tokens[tid])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// migrateTo moves tid to tier and waits for the end.
func (w *moveWorld) migrateTo(t *testing.T, tid, tier string) client.TenantMigration {
	t.Helper()
	m, err := w.bulkhead.Admin.StartMigration(t.Context(), tid, tier)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for m.Status == "running" {
		if time.Now().After(deadline) {
			t.Fatalf("migration to %s still running: %+v, data %+v", tier, m, m.Data)
		}
		time.Sleep(25 * time.Millisecond)
		if m, err = w.bulkhead.Admin.GetMigration(t.Context(), tid, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// edgeClient writes and reads its own notes through the gateway and
// remembers what was acknowledged.
type edgeClient struct {
	notes    map[string]string // id → body, of the notes acknowledged and not deleted
	deleted  []string
	failures []string
	requests int
}

func (c *edgeClient) fail(format string, a ...any) {
	c.failures = append(c.failures, fmt.Sprintf(format, a...))
}

func (c *edgeClient) step(ctx context.Context, w *moveWorld, k, i int) {
	c.requests++
	switch {
	case i%5 == 4 && len(c.notes) > 0: // delete one
		id := firstKey(c.notes)
		st, b, err := w.edge(ctx, "movco", "DELETE", "/notes/"+id, "")
		if err != nil || st != http.StatusNoContent {
			c.fail("DELETE %s: %d %s %v", id, st, b, err)
			return
		}
		delete(c.notes, id)
		c.deleted = append(c.deleted, id)
	case i%3 == 2 && len(c.notes) > 0: // read one back: an acknowledged write is there
		id := firstKey(c.notes)
		st, b, err := w.edge(ctx, "movco", "GET", "/notes/"+id, "")
		var n note
		if err != nil || st != http.StatusOK || json.Unmarshal(b, &n) != nil || n.Body != c.notes[id] {
			c.fail("GET %s: %d %s %v", id, st, b, err)
		}
	default:
		body := "note " + strconv.Itoa(k) + "/" + strconv.Itoa(i)
		st, b, err := w.edge(ctx, "movco", "POST", "/notes", `{"body":"`+body+`"}`)
		var n note
		if err != nil || st != http.StatusCreated || json.Unmarshal(b, &n) != nil {
			c.fail("POST: %d %s %v", st, b, err)
			return
		}
		c.notes[n.ID] = body
	}
}

func firstKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys[0]
}

// TestMoveThroughGateway moves a tenant pool → silo → pool while clients
// write, read back and delete its notes through Bulkhead's gateway: no
// request fails, every acknowledged note is there afterwards (and no
// deleted one), the writes pause for less than a second at each cutover,
// the gateway sends the silo tenant to its own upstream once it is one,
// and another pool tenant's requests go on; their latency before and
// during the moves is logged (bench/run measures it).
func TestMoveThroughGateway(t *testing.T) {
	w := newMoveWorld(t)
	ctx := t.Context()
	if st, b, err := w.edge(ctx, "movco", "POST", "/notes", `{"body":"before"}`); err != nil || st != http.StatusCreated {
		t.Fatalf("a note through the gateway: %d %s %v", st, b, err)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	clients := make([]*edgeClient, 3)
	for k := range clients {
		clients[k] = &edgeClient{notes: map[string]string{}}
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				clients[k].step(ctx, w, k, i)
			}
		})
	}
	var mu sync.Mutex
	var phase atomic.Int32 // 0 before the moves, 1 during
	lat := [2][]time.Duration{}
	var bystanderFailures []string
	wg.Go(func() {
		for !stop.Load() {
			start := time.Now()
			st, b, err := w.edge(ctx, "bystander", "GET", "/notes", "")
			d := time.Since(start)
			mu.Lock()
			if err != nil || st != http.StatusOK {
				bystanderFailures = append(bystanderFailures, fmt.Sprintf("%d %s %v", st, b, err))
			}
			lat[phase.Load()] = append(lat[phase.Load()], d)
			mu.Unlock()
		}
	})

	time.Sleep(time.Second)
	phase.Store(1)
	toSilo := w.migrateTo(t, "movco", "premium")
	time.Sleep(500 * time.Millisecond)
	back := w.migrateTo(t, "movco", "basic")
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	for _, m := range []client.TenantMigration{toSilo, back} {
		if m.Status != "done" || m.Data == nil || m.Data.Status != "switched" {
			t.Fatalf("migration %s → %s: %+v, data %+v", m.FromTier, m.ToTier, m, m.Data)
		}
		pause, _ := strconv.ParseFloat(m.Data.WritePauseMS, 64)
		t.Logf("%s → %s: %d rows, writes paused %.1f ms", m.FromIsolation, m.ToIsolation, m.Data.RowsTotal, pause)
		if pause <= 0 || pause >= 1000 {
			t.Errorf("write pause %s ms; want under 1000", m.Data.WritePauseMS)
		}
	}
	requests := 0
	for k, c := range clients {
		requests += c.requests
		if len(c.failures) > 0 {
			t.Errorf("client %d: %d of %d requests failed; the first: %s", k, len(c.failures), c.requests, c.failures[0])
		}
		for id, body := range c.notes {
			st, b, err := w.edge(ctx, "movco", "GET", "/notes/"+id, "")
			var n note
			if err != nil || st != http.StatusOK || json.Unmarshal(b, &n) != nil || n.Body != body {
				t.Errorf("acknowledged note %s: %d %s %v", id, st, b, err)
			}
		}
		for _, id := range c.deleted {
			if st, _, _ := w.edge(ctx, "movco", "GET", "/notes/"+id, ""); st != http.StatusNotFound {
				t.Errorf("deleted note %s: %d", id, st)
			}
		}
	}
	t.Logf("%d requests through the gateway during the moves", requests)
	if len(bystanderFailures) > 0 {
		t.Errorf("the bystander: %d failed requests, the first: %s", len(bystanderFailures), bystanderFailures[0])
	}
	t.Logf("bystander p50 before %v, during the moves %v", median(lat[0]), median(lat[1]))
	if !strings.Contains(w.own.String(), `"tenant_id":"movco"`) {
		t.Error("the silo tenant's own upstream served none of its requests while it was silo")
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
