package usage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// counterKey is a tenant's quota period.
type counterKey struct {
	tenant tenant.ID
	start  int64 // the period's start, Unix seconds
}

// counter is what this node knows of a tenant's quota period: the total
// the database held at its last flush or read, and what it admitted since
// (pending, and inflight while a flush writes it).
type counter struct {
	loaded   bool
	known    int64
	pending  int64
	inflight int64
	used     bool // admitted since the last flush: worth refreshing
}

// admitQuota counts one request against tid's quota if count is set and
// the quota has room. It returns the requests left, the time until the
// period ends and whether there was room.
//
// The bound: a node admits only while known + unflushed < quota, and its
// unflushed count never reaches QuotaBatch (it flushes first). Once the
// database total reaches the quota, each node can admit at most one batch
// before its next flush tells it so: the total stays below quota + nodes ×
// QuotaBatch.
func (s *Service) admitQuota(ctx context.Context, tid tenant.ID, plan Plan, now time.Time, count bool) (remaining int64, until time.Duration, ok bool, err error) {
	start := plan.QuotaPeriod.start(now)
	until = plan.QuotaPeriod.end(start).Sub(now)
	key := counterKey{tid, start.Unix()}
	for {
		s.quotaMu.Lock()
		c := s.counters[key]
		if c == nil || !c.loaded {
			s.quotaMu.Unlock()
			if err := s.loadCounter(ctx, key); err != nil {
				return 0, 0, false, err
			}
			continue
		}
		total := c.known + c.pending + c.inflight
		if total >= plan.Quota {
			s.quotaMu.Unlock()
			return 0, until, false, nil
		}
		if !count {
			s.quotaMu.Unlock()
			return plan.Quota - total, until, true, nil
		}
		if c.pending+c.inflight < int64(s.batch) {
			c.pending++
			c.used = true
			s.quotaMu.Unlock()
			return plan.Quota - total - 1, until, true, nil
		}
		s.quotaMu.Unlock()
		if err := s.flushQuotas(ctx); err != nil {
			return 0, 0, false, err
		}
	}
}

// loadCounter reads key's total from the database, the first time this
// node counts it.
func (s *Service) loadCounter(ctx context.Context, key counterKey) error {
	var n int64
	err := s.db.View(ctx, storage.TenantScope(key.tenant), func(tx *storage.Tx) error {
		err := tx.QueryRow(ctx, `SELECT count FROM gateway_quota_counters WHERE tenant_id = ? AND period_start = ?`,
			tx.TenantID(), key.start).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("usage: read quota of %s: %w", key.tenant, err)
	}
	s.quotaMu.Lock()
	defer s.quotaMu.Unlock()
	if c := s.counters[key]; c == nil {
		s.counters[key] = &counter{loaded: true, known: n}
	} else if !c.loaded {
		c.loaded, c.known = true, n
	}
	return nil
}

// flushQuotas adds each counter's pending requests to its row and learns
// the row's total (every node's), and refreshes the totals of the
// counters used since the last flush. Counters unused for a whole flush
// interval, and those of past periods, are forgotten. If the write fails,
// the requests go back to pending.
//
// It writes every tenant's counter in one transaction, in the platform
// scope: one commit per flush, not per tenant.
func (s *Service) flushQuotas(ctx context.Context) error {
	s.flushQuMu.Lock()
	defer s.flushQuMu.Unlock()
	type item struct {
		key counterKey
		n   int64
	}
	var items []item
	s.quotaMu.Lock()
	for k, c := range s.counters {
		switch {
		case !c.loaded:
		case c.pending > 0:
			items = append(items, item{k, c.pending})
			c.inflight, c.pending = c.pending, 0
		case c.used:
			items = append(items, item{k, 0})
		default:
			delete(s.counters, k) // idle for a whole interval
		}
		c.used = false
	}
	s.quotaMu.Unlock()
	if len(items) == 0 {
		return nil
	}
	totals := make([]int64, len(items))
	err := s.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		for i, it := range items {
			var err error
			if it.n > 0 {
				err = tx.QueryRow(ctx, `INSERT INTO gateway_quota_counters (tenant_id, period_start, count) VALUES (?, ?, ?)
					ON CONFLICT (tenant_id, period_start) DO UPDATE SET count = gateway_quota_counters.count + excluded.count
					RETURNING count`, string(it.key.tenant), it.key.start, it.n).Scan(&totals[i])
			} else {
				err = tx.QueryRow(ctx, `SELECT count FROM gateway_quota_counters WHERE tenant_id = ? AND period_start = ?`,
					string(it.key.tenant), it.key.start).Scan(&totals[i])
				if errors.Is(err, sql.ErrNoRows) {
					err = nil
				}
			}
			if err != nil {
				return fmt.Errorf("usage: flush quota of %s: %w", it.key.tenant, err)
			}
		}
		return nil
	})
	s.quotaMu.Lock()
	defer s.quotaMu.Unlock()
	for i, it := range items {
		c := s.counters[it.key]
		if c == nil {
			continue
		}
		if err != nil {
			c.pending += c.inflight
		} else {
			c.known = max(c.known, totals[i])
		}
		c.inflight = 0
	}
	return err
}
