// Package outbox publishes Bulkhead's own lifecycle events (a tenant
// created, suspended, moved to another tier, offboarded; a key rotated or
// scheduled for deletion; a connection's alert; …) through a
// transactional outbox, to the operator's stream on the embedded NATS
// server and to the operator's signed webhooks.
//
// # Written with the change
//
// Every such change is already audited in its own transaction
// (audit.Log.AppendTx, inval.Channel.Write). The audit log hands each
// event it inserts to Writer.Record (audit.Options.Outbox), in that same
// transaction; Record keeps the events whose action is one of Types as a
// row of event_outbox. The row commits with the change or not at all: a
// change that rolls back leaves no event, and a change that commits
// leaves one even if the node dies the next instant. There is no second
// list of call sites to keep in step with the audited ones.
//
// The outbox is a table of explicit rows marked published, not a cursor
// over audit_events ids: on PostgreSQL an id is taken before its
// transaction commits, so transactions commit out of id order and a
// cursor would skip the late ones.
//
// # Relayed once to the stream, fanned out to webhooks
//
// Service.Run relays unpublished rows in id order: each is published to
// the operator's stream (events.Server.PublishEvent, subject
// bulkhead.events.<type>) with Nats-Msg-Id set to the event id, then, in
// one transaction per batch, fanned out (a delivery row per subscribed
// webhook, unique per webhook and event) and marked published. A crash
// between the publication and the mark publishes the rows again at the
// next start: JetStream's de-duplication window drops the copies, so the
// stream holds each event exactly once; the fan-out is idempotent by its
// unique key. Without the events server (no --nats-listen) rows are still
// fanned out and marked: nothing queues for a stream that is not there.
//
// Several nodes on one PostgreSQL: a node claims a batch (claimed_by,
// claimed_until) under an advisory lock, and takes none while another
// node's claim is live, so one node relays at a time, in order; a claim
// of a node that died lapses after claimTTL and another node goes on.
// Within a tenant, events reach the stream in the order they committed
// (the audit chain's lock orders a tenant's transactions, and their ids
// with them).
//
// # Webhooks: at least once, retried, durable
//
// A delivery is a row (pending, delivered or failed) whose attempts are
// made by the same Run: due deliveries are leased (lease_until) so that
// two nodes do not post the same one at once, posted with a signature
// (package hooksig: the connections' alerts sign the same way), and
// retried with exponential backoff and jitter (1 s doubling to 1 h) until
// a 2xx answer or MaxAttempts. State lives in the database, so a restart
// resumes where the node stopped; a delivery whose answer was lost to a
// crash is posted again (at least once: receivers de-duplicate by the
// event id). Concurrency is bounded in all and per endpoint, so one slow
// endpoint holds back only its own deliveries.
package outbox

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the outbox's tables: event_outbox, whose rows a
// tenant's transaction writes (each the tenant's own, or the platform's),
// and webhooks and webhook_deliveries, the platform's alone.
func Migrations() storage.Component {
	c := storage.Embedded("outbox", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"event_outbox":       storage.TenantOrPlatformRows("tenant_id"),
		"webhooks":           storage.PlatformRows(),
		"webhook_deliveries": storage.PlatformRows(),
	}
	return c
}

// Types are the audit actions published as events, in the order the
// README lists them. An action joins the list only if its audit event is
// written in the transaction of its change and its detail holds no secret.
var Types = []string{
	"tenant.onboarding.started", "tenant.activated", "tenant.onboarding.failed",
	"tenant.updated", "tenant.suspended", "tenant.resumed",
	"tenant.offboarding.started", "tenant.offboarding.failed", "tenant.deleted",
	"tenant.migration.started", "tenant.tier_switched", "tenant.migration.done", "tenant.migration.failed",
	"data.placement_moved", "data.move_rolled_back",
	"kms.key_rotated", "kms.key_deletion_scheduled", "kms.key_deletion_canceled", "kms.key_destroyed",
	"connection.alert",
	"trust.created", "trust.updated", "trust.suspended", "trust.resumed", "trust.external_id_rotated", "trust.deleted",
	"posture.finding_opened", "posture.finding_resolved",
}

// Published reports whether events of an audit action are published.
func Published(action string) bool { return slices.Contains(Types, action) }

// Event is the public shape of a published event (api.Event): the body
// of a stream message and of a webhook's POST.
type Event = api.Event

// Writer writes events to the outbox in their change's transaction.
type Writer struct {
	wake chan struct{}
}

// NewWriter returns a Writer; give its Record to audit.Options.Outbox and
// the Writer to New.
func NewWriter() *Writer { return &Writer{wake: make(chan struct{}, 1)} }

// Record keeps e in the outbox, in tx, if its action is published; once
// tx commits the relay of this node is woken.
func (w *Writer) Record(ctx context.Context, tx *storage.Tx, e audit.Event) error {
	if !Published(e.Action) || e.Outcome == audit.Denied {
		return nil
	}
	ev := Event{ID: ids.New("evt"), Type: e.Action, TenantID: e.TenantID, Time: e.Time.UTC(), Subject: e.Target,
		Principal: e.Principal, Data: e.Detail}
	if ev.Data == nil {
		ev.Data = map[string]string{}
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("outbox: encode event: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO event_outbox (event_id, tenant_id, type, body, created_at) VALUES (?, ?, ?, ?, ?)`,
		ev.ID, e.TenantID, ev.Type, string(body), e.Time.UnixMicro()); err != nil {
		return fmt.Errorf("outbox: insert event: %w", err)
	}
	tx.AfterCommit(w.poke)
	return nil
}

func (w *Writer) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Match reports whether an event type is one a webhook's patterns ask
// for: "*" (every type), a type, or a prefix and ".*" ("tenant.*" is
// every tenant.… type, "tenant.migration.*" the migration's).
func Match(patterns []string, typ string) bool {
	for _, p := range patterns {
		if p == "*" || p == typ {
			return true
		}
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasSuffix(prefix, ".") && strings.HasPrefix(typ, prefix) {
			return true
		}
	}
	return false
}

// knownPattern reports whether p names at least one of Types.
func knownPattern(p string) bool {
	return slices.ContainsFunc(Types, func(t string) bool { return Match([]string{p}, t) })
}
