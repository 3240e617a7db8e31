package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// Connections: the proxy's cost over a direct call, and how soon a revoked
// grant's Part A is refused.

const upstreamToken = "sk_bench_0123456789abcdef0123456789abcdef"

// connectionRig is a tenant's connection to a stand-in upstream on
// loopback (200 bytes of JSON to the token, 401 to anything else), made on
// node 1 and proxied by node 2: a second node on the same database
// (PostgreSQL), or node 1 itself (SQLite).
type connectionRig struct {
	node1, node2 *apitest.Env
	tid          tenant.ID
	conn         connect.Created
	upstream     string
	client       *http.Client
}

// newConnectionRig starts the nodes (with twoNodes on PostgreSQL two,
// sharing a root key; else one) and the upstream, and creates the tenant
// and its connection. The nodes keep a grant they read for cacheTTL (0:
// the default, 1s).
func newConnectionRig(tb testing.TB, d storage.Dialect, cacheTTL time.Duration, twoNodes bool) *connectionRig {
	tb.Helper()
	ctx := context.Background()
	dsn := storagetest.DSN(tb, d) // skips PostgreSQL without BULKHEAD_TEST_POSTGRES
	var key [32]byte
	rand.Read(key[:])
	opts := apitest.Options{ConnectCacheTTL: cacheTTL, RootKey: base64.StdEncoding.EncodeToString(key[:])}
	r := &connectionRig{node1: apitest.New(tb, dsn, opts), tid: tenant.ID(fmt.Sprintf("cx-%06d", seq.Add(1))),
		client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}}
	r.node2 = r.node1
	if twoNodes && d == storage.Postgres {
		opts.PublicURL = r.node1.URL // nodes of one database share their public URL
		r.node2 = apitest.New(tb, dsn, opts)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer "+upstreamToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"items":[{"id":"itm_0001","name":"First item","status":"current","updated_at":"2026-12-01T10:00:00Z"},`+
			`{"id":"itm_0002","name":"Second item","status":"archived","updated_at":"2026-12-02T11:30:00Z"}]}`+"\n")
	}))
	tb.Cleanup(up.Close)
	tb.Cleanup(r.client.CloseIdleConnections)
	r.upstream = up.URL
	actor := tenant.Actor{Principal: "bench"}
	if _, _, err := r.node1.Tenants.Create(ctx, tenants.CreateRequest{ID: string(r.tid)}, "", actor); err != nil {
		tb.Fatal(err)
	}
	// With two nodes the second one's workflow engine may have claimed the
	// onboarding, and Create returned while it runs: wait for the tenant's
	// key and the rest of onboarding.
	if _, err := r.node1.Tenants.AwaitOnboarding(ctx, r.tid); err != nil {
		tb.Fatal(err)
	}
	var err error
	r.conn, err = r.node1.Connect.Create(ctx, r.tid, connect.CreateRequest{Name: "bench", UpstreamURL: up.URL + "/api",
		Token: upstreamToken, Placement: connect.Placement{Type: connect.PlaceBearer}}, actor)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// get sends GET url with the bearer token, reads the whole answer and
// returns its status.
func (r *connectionRig) get(url, bearer string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// viaNode2 sends one request with partA through node 2's proxy.
func (r *connectionRig) viaNode2(partA string) (int, error) {
	return r.get(r.node2.ProxyURL+"/c/"+r.conn.ID+"/v1/items", partA)
}

// revokeOnce adds a grant on node 1, has node 2's proxy use it (so that
// node 2 holds it in its cache), deletes it on node 1 and polls node 2
// with its Part A back to back. It returns the time from the deletion's
// return (committed) until node 2's first refusal was read, and how many
// requests node 2 still accepted before it.
func (r *connectionRig) revokeOnce(ctx context.Context) (time.Duration, int, error) {
	actor := tenant.Actor{Principal: "bench"}
	g, err := r.node1.Connect.CreateGrant(ctx, r.tid, r.conn.ID, connect.CreateGrantRequest{Token: upstreamToken}, actor)
	if err != nil {
		return 0, 0, err
	}
	// Use the grant until node 2 holds it: the new grant's own change
	// notice drops the tenant's grants on node 2 when it arrives, which
	// on a loaded machine can be after the first uses.
	for i := 0; ; i++ {
		if st, err := r.viaNode2(g.PartA); err != nil || st != http.StatusOK {
			return 0, 0, fmt.Errorf("warm-up request through node 2: status %d, %v", st, err)
		}
		if i > 0 && r.node2.Connect.CachedGrants() > 0 {
			break
		}
		if i == 100 {
			return 0, 0, errors.New("node 2 does not cache the grant")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.node1.Connect.DeleteGrant(ctx, r.tid, r.conn.ID, g.ID, actor); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	for accepted := range 100000 {
		st, err := r.viaNode2(g.PartA)
		switch {
		case err != nil:
			return 0, 0, err
		case st == http.StatusUnauthorized:
			return time.Since(t0), accepted, nil
		case st != http.StatusOK:
			return 0, 0, fmt.Errorf("node 2 answered %d to a revoked Part A, want 401", st)
		case time.Since(t0) > 10*time.Second:
			return 0, 0, fmt.Errorf("node 2 still accepts a Part A revoked %v ago", time.Since(t0))
		}
	}
	return 0, 0, errors.New("node 2 still accepts a revoked Part A after 100,000 requests")
}

// BenchmarkRevocation/<db> measures how soon a revoked grant stops working:
// each iteration deletes a grant (connect.Service.DeleteGrant, as DELETE
// …/grants/{grant} does) on node 1 and polls node 2's proxy with the
// grant's Part A until it answers 401. On PostgreSQL node 2 is a second
// node on the same database, told by LISTEN/NOTIFY; on SQLite it is node 1
// itself. The nodes keep grants for a minute, so the refusal comes from
// the change notice, not from the cache's expiry. It reports the p50 and
// the max over the iterations (bench/run runs 20), and the most requests
// node 2 accepted after a deletion had returned (max_accepted_after).
func BenchmarkRevocation(b *testing.B) {
	for _, d := range storagetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			r := newConnectionRig(b, d, time.Minute, true)
			ctx := context.Background()
			var lat []time.Duration
			stale := 0
			for b.Loop() {
				t, accepted, err := r.revokeOnce(ctx)
				if err != nil {
					b.Fatal(err)
				}
				lat, stale = append(lat, t), max(stale, accepted)
			}
			reportLatency(b, lat)
			b.ReportMetric(quantileMicros(lat, 1), "max_µs")
			b.ReportMetric(float64(stale), "max_accepted_after")
		})
	}
}

// BenchmarkProxy measures the connections proxy in-process: each
// iteration sends one GET straight to the upstream with the token and one
// through the node's proxy (loopback httptest server) with Part A, one
// after the other on kept-alive connections, and it reports the p50 and
// p99 of each and the difference of the p50s (added_p50_µs).
func BenchmarkProxy(b *testing.B) {
	for _, d := range storagetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			r := newConnectionRig(b, d, 0, false)
			direct, proxied := r.upstream+"/api/v1/items", r.node1.ProxyURL+"/c/"+r.conn.ID+"/v1/items"
			partA := r.conn.Grant.PartA
			var ld, lp []time.Duration
			for b.Loop() {
				t0 := time.Now()
				st1, err1 := r.get(direct, upstreamToken)
				t1 := time.Now()
				st2, err2 := r.get(proxied, partA)
				t2 := time.Now()
				if err1 != nil || err2 != nil || st1 != http.StatusOK || st2 != http.StatusOK {
					b.Fatalf("direct: %d %v; proxied: %d %v", st1, err1, st2, err2)
				}
				ld, lp = append(ld, t1.Sub(t0)), append(lp, t2.Sub(t1))
			}
			reportLatencyAs(b, "direct_", ld)
			reportLatencyAs(b, "proxied_", lp)
			b.ReportMetric(quantileMicros(lp, 0.5)-quantileMicros(ld, 0.5), "added_p50_µs")
		})
	}
}

// TestConnectionSmoke keeps the benchmarks' harness honest in a plain go
// test run: one revocation on each available database, and one request
// through the proxy.
func TestConnectionSmoke(t *testing.T) {
	for _, d := range storagetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			r := newConnectionRig(t, d, time.Minute, true)
			if st, err := r.viaNode2(r.conn.Grant.PartA); err != nil || st != http.StatusOK {
				t.Fatalf("through the proxy: %d %v", st, err)
			}
			if st, err := r.get(r.upstream+"/api/v1/items", r.conn.Grant.PartA); err != nil || st != http.StatusUnauthorized {
				t.Fatalf("Part A straight to the upstream: %d %v", st, err)
			}
			lat, accepted, err := r.revokeOnce(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("revoked: refused after %v (%d requests accepted before)", lat, accepted)
		})
	}
}
