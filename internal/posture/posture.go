// Package posture finds risky settings in a Bulkhead deployment, the way a
// CASB scans a company's SaaS tenants: tenant admins without a second
// factor, policies that permit everything, keys overdue for rotation, a
// serving database role that could bypass row-level security, … Each
// finding has a severity, the object, why it matters and how to fix it.
//
// The checks belong to the services that own the facts (each exposes its
// own, as a Check); this package runs them, keeps the findings (a finding
// persists under a stable id while its defect does), audits each finding
// opened and resolved — so new ones reach the operator's event stream and
// webhooks through the outbox — and serves them, a tenant's to its admins.
// Scans run on a schedule, on one node at a time, and on demand.
package posture

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the findings' tables.
func Migrations() storage.Component {
	c := storage.Embedded("posture", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"posture_findings": storage.TenantOrPlatformRows("tenant_id"),
		"posture_scans":    storage.PlatformRows(),
	}
	return c
}

// Finding is a finding as the API shows it.
type Finding = api.PostureFinding

// Check is one kind of defect. Exactly one of Tenant and Platform is set.
type Check struct {
	Code     string // stable, e.g. "admin_without_second_factor"
	Severity string // api.SeverityCritical … api.SeverityLow
	Title    string
	Why      string
	Fix      string
	// Tenant finds the defect in one tenant.
	Tenant func(ctx context.Context, tid tenant.ID) ([]Hit, error)
	// Platform finds it in the platform's settings (a hit may name a
	// tenant).
	Platform func(ctx context.Context) ([]Hit, error)
}

// Hit is one object with the check's defect.
type Hit struct {
	TenantID tenant.ID // for a platform check's hit about a tenant
	Object   string
	Detail   string // what exactly; never a secret
	Severity string // "" for the check's
}

// Config wires a Service.
type Config struct {
	DB     *storage.DB
	Audit  *audit.Log
	Clock  clock.Clock
	Logger *slog.Logger
	Checks []Check
	// Tenants lists the tenants to scan (those not deleted).
	Tenants func(ctx context.Context) ([]tenant.ID, error)
}

// Service runs checks and keeps their findings.
type Service struct {
	cfg    Config
	checks map[string]Check
}

// New returns the service; it panics on a malformed check (a programming
// error of the service that made it).
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, checks: map[string]Check{}}
	for _, c := range cfg.Checks {
		if c.Code == "" || rank(c.Severity) < 0 || (c.Tenant == nil) == (c.Platform == nil) || c.Why == "" || c.Fix == "" {
			panic("posture: malformed check " + c.Code)
		}
		if _, dup := s.checks[c.Code]; dup {
			panic("posture: duplicate check " + c.Code)
		}
		s.checks[c.Code] = c
	}
	return s
}

// Checks returns the checks, by code.
func (s *Service) Checks() []Check {
	out := make([]Check, 0, len(s.checks))
	for _, c := range s.checks {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Check) int { return strings.Compare(a.Code, b.Code) })
	return out
}

func rank(sev string) int {
	switch sev {
	case api.SeverityCritical:
		return 0
	case api.SeverityHigh:
		return 1
	case api.SeverityMedium:
		return 2
	case api.SeverityLow:
		return 3
	}
	return -1
}

var severities = []string{api.SeverityCritical, api.SeverityHigh, api.SeverityMedium, api.SeverityLow}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// findingID is stable for a check, a tenant and an object.
func findingID(check string, tid tenant.ID, object string) string {
	sum := sha256.Sum256([]byte(check + "\x00" + string(tid) + "\x00" + object))
	return "pf_" + idEncoding.EncodeToString(sum[:16])[:26]
}

// result is what a scan found for one chain (a tenant, or "").
type result struct {
	hits map[string]Hit // by finding id
	code map[string]string
	// ran are the checks that ran for this chain: only their old
	// findings may be resolved.
	ran map[string]bool
}

func newResult() *result {
	return &result{hits: map[string]Hit{}, code: map[string]string{}, ran: map[string]bool{}}
}

// ErrBusy is a scan refused because another runs.
var ErrBusy = errs.E(errs.Conflict, "scan_running", "a posture scan is running; try again when it ends")

// claimFor bounds how long a scan holds the claim.
const claimFor = 30 * time.Minute

// Scan runs every check now and records what changed. Only one scan runs
// at a time across the nodes (a claim in the database).
func (s *Service) Scan(ctx context.Context, actor tenant.Actor) (api.PostureScan, error) {
	now := s.cfg.Clock.Now()
	claimed := false
	err := s.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE posture_scans SET claimed_until = ? WHERE id = 1 AND claimed_until < ?`,
			now.Add(claimFor).UnixMicro(), now.UnixMicro())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		claimed = n == 1
		return nil
	})
	if err != nil {
		return api.PostureScan{}, fmt.Errorf("posture: claim: %w", err)
	}
	if !claimed {
		return api.PostureScan{}, ErrBusy
	}
	defer func() {
		end := s.cfg.Clock.Now()
		if err := s.cfg.DB.Update(context.WithoutCancel(ctx), storage.PlatformScope(), func(tx *storage.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE posture_scans SET claimed_until = 0, scanned_at = ? WHERE id = 1`, end.UnixMicro())
			return err
		}); err != nil {
			s.cfg.Logger.ErrorContext(ctx, "posture: release the scan", "err", err)
		}
	}()
	return s.scan(ctx, actor, now)
}

func (s *Service) scan(ctx context.Context, actor tenant.Actor, now time.Time) (api.PostureScan, error) {
	out := api.PostureScan{Open: map[string]int{}, Failed: []string{}, ScannedAt: now.UTC()}
	ids, err := s.cfg.Tenants(ctx)
	if err != nil {
		return out, fmt.Errorf("posture: list tenants: %w", err)
	}
	out.Tenants = len(ids)
	results := map[tenant.ID]*result{"": newResult()}
	for _, id := range ids {
		results[id] = newResult()
	}
	failed := map[string]bool{}
	for _, c := range s.Checks() {
		if c.Platform != nil {
			hits, err := c.Platform(ctx)
			if err != nil {
				s.cfg.Logger.ErrorContext(ctx, "posture: check failed", "check", c.Code, "err", err)
				failed[c.Code] = true
				continue
			}
			for _, r := range results {
				r.ran[c.Code] = true
			}
			for _, h := range hits {
				r, ok := results[h.TenantID]
				if !ok {
					// About a tenant not scanned (deleted, offboarding):
					// the platform's finding.
					r, h.Object, h.TenantID = results[""], "tenant:"+string(h.TenantID)+" "+h.Object, ""
				}
				add(r, c, h)
			}
			continue
		}
		for _, id := range ids {
			hits, err := c.Tenant(ctx, id)
			if err != nil {
				if ctx.Err() != nil {
					return out, ctx.Err()
				}
				s.cfg.Logger.ErrorContext(ctx, "posture: check failed", "check", c.Code, "tenant_id", string(id), "err", err)
				failed[c.Code] = true
				continue
			}
			results[id].ran[c.Code] = true
			for _, h := range hits {
				add(results[id], c, h)
			}
		}
	}
	for code := range failed {
		out.Failed = append(out.Failed, code)
	}
	slices.Sort(out.Failed)
	for tid, r := range results {
		opened, resolved, err := s.record(ctx, tid, r, actor, now)
		if err != nil {
			return out, err
		}
		out.Opened += opened
		out.Resolved += resolved
		for _, h := range r.hits {
			out.Open[h.Severity]++
		}
	}
	return out, nil
}

func add(r *result, c Check, h Hit) {
	if h.Severity == "" || rank(h.Severity) < 0 {
		h.Severity = c.Severity
	}
	h.Object = clip(h.Object, 300)
	h.Detail = clip(h.Detail, 1000)
	id := findingID(c.Code, h.TenantID, h.Object)
	r.hits[id], r.code[id] = h, c.Code
}

func clip(s string, n int) string { return errs.Clip(strings.ToValidUTF8(s, "\uFFFD"), n) }

func scope(tid tenant.ID) storage.Scope {
	if tid == "" {
		return storage.PlatformScope()
	}
	return storage.TenantScope(tid)
}

// record writes one chain's findings: new ones opened, present ones seen
// again, absent ones of checks that ran resolved; each opening and
// resolution audited in the chain.
func (s *Service) record(ctx context.Context, tid tenant.ID, r *result, actor tenant.Actor, now time.Time) (opened, resolved int, err error) {
	err = s.cfg.DB.Update(ctx, scope(tid), func(tx *storage.Tx) error {
		opened, resolved = 0, 0
		rows, err := tx.Query(ctx, `SELECT id, check_code FROM posture_findings WHERE tenant_id = ? AND resolved_at = 0`, tx.TenantID())
		if err != nil {
			return err
		}
		open := map[string]string{}
		for rows.Next() {
			var id, code string
			if err := rows.Scan(&id, &code); err != nil {
				rows.Close()
				return err
			}
			open[id] = code
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		at := now.UnixMicro()
		for id, h := range r.hits {
			if _, ok := open[id]; ok {
				if _, err := tx.Exec(ctx, `UPDATE posture_findings SET last_seen = ?, severity = ?, rank = ?, detail = ? WHERE id = ?`,
					at, h.Severity, rank(h.Severity), h.Detail, id); err != nil {
					return err
				}
				continue
			}
			// A finding resolved before and back now opens again.
			if _, err := tx.Exec(ctx, `DELETE FROM posture_findings WHERE id = ?`, id); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO posture_findings (id, tenant_id, check_code, severity, rank, object, detail, first_seen, last_seen)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, tx.TenantID(), r.code[id], h.Severity, rank(h.Severity), h.Object, h.Detail, at, at); err != nil {
				return err
			}
			opened++
			if err := s.cfg.Audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: actor.Principal, Action: "posture.finding_opened",
				Target: id, RequestID: actor.RequestID, SourceIP: actor.SourceIP,
				Detail: map[string]string{"check": r.code[id], "severity": h.Severity, "object": h.Object}}); err != nil {
				return err
			}
		}
		for id, code := range open {
			if _, still := r.hits[id]; still || !r.ran[code] {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE posture_findings SET resolved_at = ? WHERE id = ?`, at, id); err != nil {
				return err
			}
			resolved++
			if err := s.cfg.Audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: actor.Principal, Action: "posture.finding_resolved",
				Target: id, RequestID: actor.RequestID, SourceIP: actor.SourceIP, Detail: map[string]string{"check": code}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("posture: record findings: %w", err)
	}
	return opened, resolved, nil
}

// Filter selects findings.
type Filter struct {
	// Tenant is a tenant's findings; "" with AllTenants false is the
	// platform's own.
	Tenant     tenant.ID
	AllTenants bool   // every chain (the operator)
	Severity   string // at least this severe ("": any)
	Resolved   bool   // the resolved ones instead of the open ones
	Limit      int
	Cursor     string
}

// List returns findings, most severe first, then by id.
func (s *Service) List(ctx context.Context, f Filter) (api.PosturePage, error) {
	limit, after, err := page.Bounds(f.Limit, f.Cursor)
	if err != nil {
		return api.PosturePage{}, err
	}
	maxRank := 3
	if f.Severity != "" {
		if maxRank = rank(f.Severity); maxRank < 0 {
			return api.PosturePage{}, errs.Field("severity", "invalid_severity", "severity is one of %s", strings.Join(severities, ", "))
		}
	}
	afterRank, afterID := -1, ""
	if after != "" {
		r, id, ok := strings.Cut(after, "-")
		n, err := strconv.Atoi(r)
		if !ok || err != nil || n < 0 || n > 3 {
			return api.PosturePage{}, errs.Field("cursor", "invalid_cursor", "cursor is not one this server issued")
		}
		afterRank, afterID = n, id
	}
	sc, where, args := scope(f.Tenant), `tenant_id = ?`, []any{string(f.Tenant)}
	if f.AllTenants {
		sc, where, args = storage.PlatformScope(), `1 = 1`, nil
	}
	resolved := `resolved_at = 0`
	if f.Resolved {
		resolved = `resolved_at > 0`
	}
	out := api.PosturePage{Items: []api.PostureFinding{}, Counts: map[string]int{}}
	err = s.cfg.DB.View(ctx, sc, func(tx *storage.Tx) error {
		q := `SELECT id, tenant_id, check_code, severity, rank, object, detail, first_seen, last_seen, resolved_at FROM posture_findings
			WHERE ` + where + ` AND ` + resolved + ` AND rank <= ? AND (rank > ? OR (rank = ? AND id > ?)) ORDER BY rank, id LIMIT ?`
		rows, err := tx.Query(ctx, q, append(args, maxRank, afterRank, afterRank, afterID, limit+1)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f api.PostureFinding
			var rk int
			var first, last, res int64
			if err := rows.Scan(&f.ID, &f.TenantID, &f.Check, &f.Severity, &rk, &f.Object, &f.Detail, &first, &last, &res); err != nil {
				return err
			}
			f.FirstSeen, f.LastSeen = time.UnixMicro(first).UTC(), time.UnixMicro(last).UTC()
			if res > 0 {
				f.ResolvedAt = time.UnixMicro(res).UTC()
			}
			if c, ok := s.checks[f.Check]; ok {
				f.Title, f.Why, f.Fix = c.Title, c.Why, c.Fix
			}
			out.Items = append(out.Items, f)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		crows, err := tx.Query(ctx, `SELECT severity, COUNT(*) FROM posture_findings WHERE `+where+` AND resolved_at = 0 GROUP BY severity`, args...)
		if err != nil {
			return err
		}
		defer crows.Close()
		for crows.Next() {
			var sev string
			var n int
			if err := crows.Scan(&sev, &n); err != nil {
				return err
			}
			out.Counts[sev] = n
		}
		return crows.Err()
	})
	if err != nil {
		return api.PosturePage{}, fmt.Errorf("posture: list: %w", err)
	}
	out.ScannedAt, err = s.scannedAt(ctx)
	if err != nil {
		return api.PosturePage{}, err
	}
	var next string
	out.Items, next = page.Trim(out.Items, limit, func(f api.PostureFinding) string { return strconv.Itoa(rank(f.Severity)) + "-" + f.ID })
	out.NextCursor = next
	return out, nil
}

func (s *Service) scannedAt(ctx context.Context) (time.Time, error) {
	var at int64
	err := s.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT scanned_at FROM posture_scans WHERE id = 1`).Scan(&at)
	})
	if err != nil || at == 0 {
		return time.Time{}, err
	}
	return time.UnixMicro(at).UTC(), nil
}

// Run scans every interval (the first a minute after the start) until
// ctx ends. A node that finds another's scan running skips its turn.
func (s *Service) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		<-ctx.Done()
		return nil
	}
	first, firstC := s.cfg.Clock.NewTicker(time.Minute)
	tick, tickC := s.cfg.Clock.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			first.Stop()
			return nil
		case <-firstC:
			first.Stop()
		case <-tickC:
		}
		if _, err := s.Scan(ctx, tenant.Actor{Principal: "system"}); err != nil && !errors.Is(err, ErrBusy) && ctx.Err() == nil {
			s.cfg.Logger.ErrorContext(ctx, "posture: scan failed", "err", err)
		}
	}
}
