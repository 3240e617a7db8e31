package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/authz"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// The decision benchmarks' population: DecisionTenants stores of
// PoliciesPerTenant policies each (40 static, 10 linked from 2 templates).
const (
	decisionTenants   = 10000
	policiesPerTenant = 50
	hotTenants        = 1000 // the warm benchmark's working set (the default cache size)
)

// staticPolicy is the i-th static policy of a store: scope matches on
// users, groups and folders, and conditions on attributes and context.
func staticPolicy(i int) string {
	switch i % 4 {
	case 0:
		return fmt.Sprintf(`permit(principal == User::"u%d", action == Action::"read", resource in Folder::"f%d");`, i, i%5)
	case 1:
		return fmt.Sprintf(`permit(principal in Group::"g%d", action in [Action::"read", Action::"write"], resource)
when { resource.owner == principal || context.level > %d };`, i%7, i)
	case 2:
		return fmt.Sprintf(`forbid(principal, action == Action::"delete", resource in Folder::"f%d")
when { resource has locked && resource.locked } unless { principal in Group::"admins" };`, i%5)
	default:
		return fmt.Sprintf(`permit(principal is User, action == Action::"comment", resource is Doc)
when { context.time >= %d && context.time < %d && resource.tags.contains("t%d") };`, 480+i, 1020-i, i%9)
	}
}

var benchTemplates = []string{
	`permit(principal == ?principal, action == Action::"read", resource == ?resource);`,
	`permit(principal in ?principal, action, resource in ?resource) when { context.time >= 840 && context.time < 1020 };`,
}

// seededNode returns a node (SQLite) whose database holds the decision
// population, written straight into the tables.
func seededNode(b *testing.B) *app.App {
	a := openNode(b, storagetest.DSN(b, storage.SQLite))
	start := time.Now()
	if err := seedStores(context.Background(), a.DB); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d stores × %d policies in %v", decisionTenants, policiesPerTenant, time.Since(start).Round(time.Millisecond))
	return a
}

func seedStores(ctx context.Context, db *storage.DB) error {
	now := time.Now().UnixMicro()
	for lo := 0; lo < decisionTenants; lo += 500 {
		err := db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			for t := lo; t < min(lo+500, decisionTenants); t++ {
				tid := benchTenant(t)
				if _, err := tx.Exec(ctx, `INSERT INTO authz_stores (tenant_id, schema_text, schema_format, schema_at, log_allows, principal_type, group_type, created_at, updated_at)
					VALUES (?, '', '', 0, ?, 'User', 'Group', ?, ?)`, tid, false, now, now); err != nil {
					return err
				}
				for i, text := range benchTemplates {
					if _, err := tx.Exec(ctx, `INSERT INTO authz_templates (tenant_id, id, statement, description, created_at, updated_at)
						VALUES (?, ?, ?, '', ?, ?)`, tid, benchID("tpl", t, i), text, now, now); err != nil {
						return err
					}
				}
				var q strings.Builder
				var args []any
				q.WriteString(`INSERT INTO authz_policies (tenant_id, id, statement, description, template_id, principal_type, principal_id, resource_type, resource_id, created_at, updated_at) VALUES `)
				for i := range policiesPerTenant {
					if i > 0 {
						q.WriteString(",")
					}
					q.WriteString("(?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?)")
					if i < 40 {
						args = append(args, tid, benchID("pol", t, i), staticPolicy(i), "", "", "", "", "", now, now)
						continue
					}
					j := i - 40
					if j%2 == 0 {
						args = append(args, tid, benchID("pol", t, i), "", benchID("tpl", t, 0), "User", fmt.Sprintf("s%d", j), "Doc", fmt.Sprintf("d%d", j), now, now)
					} else {
						args = append(args, tid, benchID("pol", t, i), "", benchID("tpl", t, 1), "Group", fmt.Sprintf("g%d", j%7), "Folder", fmt.Sprintf("f%d", j%5), now, now)
					}
				}
				if _, err := tx.Exec(ctx, q.String(), args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seed stores: %w", err)
		}
	}
	return nil
}

func benchTenant(i int) tenant.ID { return tenant.ID(fmt.Sprintf("dz-%05d", i)) }

// benchID is an id of the form ids.New makes (prefix, 26 base32 characters).
func benchID(prefix string, t, i int) string {
	digits := fmt.Sprintf("%013d%013d", t, i)
	return prefix + "_" + strings.Map(func(r rune) rune { return 'a' + (r - '0') }, digits)
}

// decisionRequest is a request that touches most policies' conditions:
// u7 in group g3 reads d7, a document in folder f2, with context.
func decisionRequest(i int) authz.Request {
	user := fmt.Sprintf("u%d", i%40)
	return authz.Request{
		Principal: &authz.EntityRef{Type: "User", ID: user},
		Action:    &authz.EntityRef{Type: "Action", ID: []string{"read", "write", "comment", "delete"}[i%4]},
		Resource:  &authz.EntityRef{Type: "Doc", ID: "d7"},
		Context:   []byte(`{"level": 12, "time": 900}`),
		Entities: []byte(`[
			{"uid": {"type": "User", "id": "` + user + `"}, "attrs": {}, "parents": [{"type": "Group", "id": "g3"}]},
			{"uid": {"type": "Doc", "id": "d7"}, "attrs": {"owner": {"__entity": {"type": "User", "id": "u2"}}, "locked": false, "tags": ["t1", "t4"]},
			 "parents": [{"type": "Folder", "id": "f2"}]},
			{"uid": {"type": "Folder", "id": "f2"}, "attrs": {}, "parents": []}
		]`),
	}
}

var benchAsker = authz.Asker{Actor: tenant.Actor{Principal: "bench"}}

// BenchmarkDecision measures authz.Service.Authorize in-process, one
// caller, over 10,000 stores of 50 policies on SQLite, and reports the
// p50 and p99 of single decisions:
//
//   - warm: round-robin over 1,000 tenants whose compiled sets are all in
//     the cache (its default size);
//   - cold: every decision on a tenant whose set is not cached (cache of
//     one, round-robin over all 10,000): read and compile the store, then
//     decide;
//   - write: one policy written to a store, then the first decision on it
//     (invalidation to first decision).
func BenchmarkDecision(b *testing.B) {
	a := seededNode(b)
	ctx := context.Background()
	run := func(b *testing.B, svc *authz.Service, tenantOf func(i int) tenant.ID) {
		lat := make([]time.Duration, 0, b.N)
		var denies int
		b.ResetTimer()
		for i := range b.N {
			t0 := time.Now()
			d, err := svc.Authorize(ctx, tenantOf(i), decisionRequest(i), benchAsker)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			if d.Decision == authz.Deny {
				denies++
			}
		}
		b.StopTimer()
		reportLatency(b, lat)
		b.ReportMetric(float64(denies)/float64(b.N)*100, "deny_%")
	}
	b.Run("warm", func(b *testing.B) {
		svc := authz.New(a.DB, a.Audit, authz.Options{CacheSize: hotTenants})
		for i := range hotTenants {
			if _, err := svc.Authorize(ctx, benchTenant(i), decisionRequest(i), benchAsker); err != nil {
				b.Fatal(err)
			}
		}
		run(b, svc, func(i int) tenant.ID { return benchTenant(i % hotTenants) })
	})
	b.Run("cold", func(b *testing.B) {
		svc := authz.New(a.DB, a.Audit, authz.Options{CacheSize: 1})
		run(b, svc, func(i int) tenant.ID { return benchTenant(i % decisionTenants) })
	})
	b.Run("write", func(b *testing.B) {
		svc := authz.New(a.DB, a.Audit, authz.Options{CacheSize: hotTenants})
		tid := tenant.ID(fmt.Sprintf("dz-write-%d", b.N))
		if _, _, err := a.Tenants.Create(ctx, tenants.CreateRequest{ID: string(tid)}, "", tenant.Actor{Principal: "bench"}); err != nil {
			b.Fatal(err)
		}
		var ids []string
		for i := range policiesPerTenant {
			p, err := svc.CreatePolicy(ctx, tid, authz.PolicyInput{Statement: staticPolicy(i)}, benchAsker.Actor)
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, p.ID)
		}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			t0 := time.Now()
			if _, err := svc.ReplacePolicy(ctx, tid, ids[i%len(ids)], authz.PolicyInput{Statement: staticPolicy(i)}, benchAsker.Actor); err != nil {
				b.Fatal(err)
			}
			if _, err := svc.Authorize(ctx, tid, decisionRequest(i), benchAsker); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		reportLatency(b, lat)
	})
}

// reportLatency reports the p50 and p99 of lat in microseconds; it sorts lat.
func reportLatency(b *testing.B, lat []time.Duration) { reportLatencyAs(b, "", lat) }

// reportLatencyAs is reportLatency with the metrics named prefix+"p50_µs"
// and prefix+"p99_µs".
func reportLatencyAs(b *testing.B, prefix string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(quantileMicros(lat, 0.50), prefix+"p50_µs")
	b.ReportMetric(quantileMicros(lat, 0.99), prefix+"p99_µs")
}

// quantileMicros is the p-quantile (0 < p ≤ 1) of sorted, in microseconds.
func quantileMicros(sorted []time.Duration, p float64) float64 {
	k := min(len(sorted)-1, max(0, int(p*float64(len(sorted)))-1))
	return float64(sorted[k].Nanoseconds()) / 1e3
}
