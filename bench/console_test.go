package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/console/consoletest"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// Console scale: the 10,000 tenants and 100,000 audit events.
const (
	consoleTenants = 10000
	consoleEvents  = 100000
	// consoleBigChain is the tenant with a fifth of the events: its own
	// timeline pages through 20,000.
	consoleBigChain = "ten-00042"
)

// BenchmarkConsolePages measures the console's pages as an operator's
// browser gets them (HTTP over loopback, the session cookie, every page
// made from in-process API calls with the operator's token) on a node
// with 10,000 tenants and 100,000 audit events (SQLite): the tenant list
// (first page, a search, a filter), a tenant, the platform's timeline,
// one tenant's, and a filter on a rare action. It reports p50 and p99 per
// page: the target is a p50 under 50 ms.
func BenchmarkConsolePages(b *testing.B) {
	env := apitest.New(b, storagetest.DSN(b, storage.SQLite), apitest.Options{
		Argon2: identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}})
	ctx := b.Context()
	seedTenants(b, env, consoleTenants)
	seedAudit(b, env, consoleEvents)
	op, err := env.Admin.CreateOperator(ctx, client.CreateOperator{Email: "bench@ops.example", Name: "Bench"})
	if err != nil {
		b.Fatal(err)
	}
	br := consoletest.New(b, env.URL)
	if status, page := br.SignInOperator("bench@ops.example", op.Password, "the benchmark's own password", op.TOTP.Secret, time.Now()); status != http.StatusOK ||
		!strings.Contains(page, `data-page="tenants"`) {
		b.Fatalf("sign in: %d %.500s", status, page)
	}
	for _, p := range []struct{ name, path, want string }{
		{"tenants", "/console/tenants", "ten-00001"},
		{"tenants-search", "/console/tenants?q=ten-0999", "ten-09990"},
		{"tenants-filter", "/console/tenants?tier=premium&status=active", "ten-00002"},
		{"tenant", "/console/tenants/ten-05000", "ten-05000"},
		{"audit", "/console/audit", "bench.event"},
		{"audit-tenant", "/console/tenants/" + consoleBigChain + "/audit", "bench.event"},
		{"audit-rare-action", "/console/audit?action=bench.rare", "<td>bench.rare</td>"},
	} {
		b.Run(p.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				status, body, _ := br.Get(p.path)
				lat = append(lat, time.Since(start))
				if status != http.StatusOK || !strings.Contains(body, p.want) {
					b.Fatalf("%s: %d, no %q in %.300s", p.path, status, p.want, body)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-p50")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
		})
	}
}

// seedTenants adds n active tenants ten-00001… in one statement, copies
// of a real one (onboarded through the API) with a tier by id.
func seedTenants(tb testing.TB, env *apitest.Env, n int) {
	tb.Helper()
	ctx := context.Background()
	if _, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: "seed", Name: "Seed"}, ""); err != nil {
		tb.Fatal(err)
	}
	err := env.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT * FROM tenants WHERE id = 'seed'`)
		if err != nil {
			return err
		}
		cols, err := rows.Columns()
		rows.Close()
		if err != nil {
			return err
		}
		var sel []string
		for _, c := range cols {
			switch c {
			case "id":
				sel = append(sel, `printf('ten-%05d', i)`)
			case "name":
				sel = append(sel, `printf('Tenant %d', i)`)
			case "tier":
				sel = append(sel, `CASE i % 3 WHEN 0 THEN 'basic' WHEN 1 THEN 'standard' ELSE 'premium' END`)
			case "isolation":
				sel = append(sel, `CASE i % 3 WHEN 0 THEN 'pool' WHEN 1 THEN 'bridge' ELSE 'silo' END`)
			default:
				sel = append(sel, "t."+c)
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO tenants (`+strings.Join(cols, ", ")+`)
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			SELECT `+strings.Join(sel, ", ")+` FROM n, tenants t WHERE t.id = 'seed'`, n)
		return err
	})
	if err != nil {
		tb.Fatalf("seed tenants: %v", err)
	}
}

// seedAudit appends n events through the audit log (hash-chained, group
// commits): a fifth to consoleBigChain, the rest across a thousand
// tenants, and one rare action.
func seedAudit(tb testing.TB, env *apitest.Env, n int) {
	tb.Helper()
	ctx := context.Background()
	const workers = 32
	// Events name a dozen people, as a day's trail does: the timeline
	// looks each up (the console names people by email), so a page costs
	// what it costs in use.
	var people []string
	for range 12 {
		people = append(people, "user:"+ids.New("usr"))
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				tid := fmt.Sprintf("ten-%05d", 1+i%1000)
				if i%5 == 0 {
					tid = consoleBigChain
				}
				action := "bench.event"
				if i == n/2 {
					action = "bench.rare"
				}
				if err := env.Audit.Append(ctx, audit.Event{TenantID: tid, Principal: people[i%len(people)], Action: action,
					Target: fmt.Sprintf("obj_%d", i), Outcome: audit.Success}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatalf("seed audit: %v", err)
	}
}
