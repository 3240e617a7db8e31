package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// PlatformChain, as a Filter's Tenant, selects the platform's own events.
const PlatformChain = "-"

// Filter selects events for ListAllTenants. Zero fields match everything.
type Filter struct {
	Tenant string // a tenant id, PlatformChain, or "" for all chains
	Action string
	Target string
	Since  time.Time // inclusive
	Until  time.Time // exclusive
	Limit  int       // 1..1000, default 100
	Cursor string
}

// Page is one page of events, newest first.
type Page struct {
	Items      []Event `json:"items"`
	NextCursor string  `json:"next_cursor"`
}

const eventColumns = `id, chain, seq, time, principal, action, target, outcome, request_id, source_ip, detail, prev_hash, hash`

type scanner interface{ Scan(...any) error }

func scanEvent(s scanner) (Event, string, error) {
	var e Event
	var t int64
	var outcome, detail string
	err := s.Scan(&e.ID, &e.TenantID, &e.Seq, &t, &e.Principal, &e.Action, &e.Target, &outcome,
		&e.RequestID, &e.SourceIP, &detail, &e.PrevHash, &e.Hash)
	if err != nil {
		return e, "", err
	}
	e.Time = time.UnixMicro(t).UTC()
	e.Outcome = Outcome(outcome)
	if detail != "" {
		if err := json.Unmarshal([]byte(detail), &e.Detail); err != nil {
			e.Detail = map[string]string{"unparsable": "true"}
		}
	}
	return e, detail, nil
}

// ListAllTenants returns events of every chain that match f, newest first.
// It crosses tenants and is for the operator only.
func (l *Log) ListAllTenants(ctx context.Context, f Filter) (Page, error) {
	return l.list(ctx, storage.PlatformScope(), f)
}

// ListTenant returns the events of one tenant's chain that match f (f.Tenant is ignored).
func (l *Log) ListTenant(ctx context.Context, scope storage.Scope, f Filter) (Page, error) {
	if scope.IsPlatform() {
		return Page{}, fmt.Errorf("audit: ListTenant needs a tenant scope")
	}
	return l.list(ctx, scope, f)
}

func (l *Log) list(ctx context.Context, scope storage.Scope, f Filter) (Page, error) {
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.Limit < 1 || f.Limit > 1000 {
		return Page{}, errs.Field("limit", "invalid_limit", "limit must be between 1 and 1000")
	}
	var where []string
	var args []any
	if !scope.IsPlatform() {
		where, args = append(where, "chain = ?"), append(args, "") // replaced below
	} else if f.Tenant == PlatformChain {
		where = append(where, "chain = ''")
	} else if f.Tenant != "" {
		where, args = append(where, "chain = ?"), append(args, f.Tenant)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if f.Target != "" {
		where, args = append(where, "target = ?"), append(args, f.Target)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time < ?"), append(args, f.Until.UnixMicro())
	}
	if f.Cursor != "" {
		id, err := decodeCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		where, args = append(where, "id < ?"), append(args, id)
	}
	q := `SELECT ` + eventColumns + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit+1)
	var page Page
	err := l.db.View(ctx, scope, func(tx *storage.Tx) error {
		if !scope.IsPlatform() {
			args[0] = tx.TenantID() // the tenant comes from the scope, never from the filter
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("audit: list: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			e, _, err := scanEvent(rows)
			if err != nil {
				return fmt.Errorf("audit: list: %w", err)
			}
			page.Items = append(page.Items, e)
		}
		return rows.Err()
	})
	if err != nil {
		return Page{}, err
	}
	if len(page.Items) > f.Limit {
		page.Items = page.Items[:f.Limit]
		page.NextCursor = encodeCursor(page.Items[f.Limit-1].ID)
	}
	if page.Items == nil {
		page.Items = []Event{}
	}
	return page, nil
}

func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10)))
}

func decodeCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if id, err := strconv.ParseInt(string(b), 10, 64); err == nil && id > 0 {
			return id, nil
		}
	}
	return 0, errs.Field("cursor", "invalid_cursor", "cursor is not one this server issued")
}

// Break describes the first inconsistency Verify found.
type Break = api.ChainBreak

// Report is the result of Verify.
type Report = api.VerifyReport

// VerifyAllTenants walks every chain and reports the first event whose hash,
// sequence number or link to its predecessor is wrong, a chain whose
// recorded head does not match its last event, or a chain among expected
// (the tenants that exist, each of which has events from its creation on)
// that is missing altogether.
func (l *Log) VerifyAllTenants(ctx context.Context, expected ...string) (Report, error) {
	var rep Report
	err := l.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		heads := map[string]head{}
		rows, err := tx.Query(ctx, `SELECT chain, seq, hash FROM audit_heads`)
		if err != nil {
			return fmt.Errorf("audit: verify: %w", err)
		}
		for rows.Next() {
			var c string
			var h head
			if err := rows.Scan(&c, &h.seq, &h.hash); err != nil {
				rows.Close()
				return fmt.Errorf("audit: verify: %w", err)
			}
			heads[c] = h
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("audit: verify: %w", err)
		}
		rep.Chains = len(heads)
		for _, c := range expected {
			if _, ok := heads[c]; !ok {
				rep.Broken = &Break{TenantID: c, Reason: "the tenant's chain has no recorded head: its head, and perhaps its events, were removed"}
				return nil
			}
		}

		rows, err = tx.Query(ctx, `SELECT `+eventColumns+` FROM audit_events ORDER BY chain, seq`)
		if err != nil {
			return fmt.Errorf("audit: verify: %w", err)
		}
		defer rows.Close()
		chain, prev, seq, started := "", genesis, int64(0), false
		endChain := func() {
			h, ok := heads[chain]
			switch {
			case !ok:
				rep.Broken = &Break{TenantID: chain, Seq: seq, Reason: "chain has events but no recorded head"}
			case h.seq != seq || h.hash != prev:
				rep.Broken = &Break{TenantID: chain, Seq: seq + 1,
					Reason: fmt.Sprintf("chain ends at event %d but its head records event %d: events were removed", seq, h.seq)}
			}
			delete(heads, chain)
		}
		for rows.Next() {
			e, detail, err := scanEvent(rows)
			if err != nil {
				return fmt.Errorf("audit: verify: %w", err)
			}
			if !started || e.TenantID != chain {
				if started {
					if endChain(); rep.Broken != nil {
						return nil
					}
				}
				chain, prev, seq, started = e.TenantID, genesis, 0, true
			}
			rep.Events++
			var reason string
			switch {
			case e.Seq != seq+1:
				reason = fmt.Sprintf("expected event %d, found %d: events were removed", seq+1, e.Seq)
			case e.PrevHash != prev:
				reason = "previous-hash link does not match the event before it"
			case e.hash(detail) != e.Hash:
				reason = "hash does not match the event's contents: the row was altered"
			}
			if reason != "" {
				rep.Broken = &Break{TenantID: e.TenantID, Seq: e.Seq, EventID: e.ID, Reason: reason}
				return nil
			}
			prev, seq = e.Hash, e.Seq
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("audit: verify: %w", err)
		}
		if started {
			if endChain(); rep.Broken != nil {
				return nil
			}
		}
		for c, h := range heads {
			rep.Broken = &Break{TenantID: c, Seq: h.seq, Reason: "chain head recorded but its events are gone"}
			return nil
		}
		return nil
	})
	rep.OK = err == nil && rep.Broken == nil
	return rep, err
}
