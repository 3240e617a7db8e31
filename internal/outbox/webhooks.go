package outbox

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

const (
	webhookPrefix  = "whk"
	deliveryPrefix = "dlv"
	// MaxWebhooks bounds the operator's webhooks; MaxPatterns a webhook's
	// event patterns.
	MaxWebhooks = 100
	MaxPatterns = 50
	maxURLBytes = 2048
)

// Delivery states.
const (
	StatusPending   = "pending"   // waiting for its next attempt
	StatusDelivered = "delivered" // an attempt got a 2xx answer
	StatusFailed    = "failed"    // MaxAttempts attempts failed, or the webhook's secret no longer opens
)

// Webhook is an operator's endpoint for events. Its secret is shown once,
// by Create.
type Webhook struct {
	ID        string
	URL       string
	Events    []string
	CreatedAt time.Time
}

// Created is a new webhook and its signing secret (whsec_…).
type Created struct {
	Webhook
	Secret string
}

// Delivery is one event's delivery to one webhook: a line of its log.
type Delivery struct {
	ID          string
	EventID     string
	Type        string
	Status      string
	Attempts    int
	LastStatus  int    // the last attempt's HTTP status; 0 if it got none
	LastError   string // why the last attempt failed, if it did
	NextAttempt time.Time
	DeliveredAt time.Time
	CreatedAt   time.Time

	seq int64 // the log's order, and its cursor
}

// Page is a page of items and the cursor of the next.
type Page[T any] struct {
	Items      []T
	NextCursor string
}

func notFound(id string) error {
	return errs.E(errs.NotFound, "webhook_not_found", "webhook %q not found", errs.Clip(id, 64))
}

func secretBinding(id string) []byte { return []byte("bulkhead-webhook-secret\x00id=" + id) }

// checkURL checks a webhook's URL: http or https, a host, no userinfo or
// fragment, at most 2048 bytes; a literal loopback or private address only
// if private addresses are allowed (names resolving to one are refused when
// dialed).
func (s *Service) checkURL(raw string) (string, error) {
	bad := func(why string) error {
		return errs.Field("url", "invalid_webhook_url", "url must be an http(s) URL: %s", why)
	}
	if len(raw) > maxURLBytes {
		return "", bad("it is over 2048 bytes")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", bad("it does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", bad("the scheme is not http or https")
	case u.User != nil:
		return "", bad("it carries userinfo")
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return "", bad("it names no host")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", bad("it has a fragment")
	}
	if !s.cfg.AllowPrivate && netguard.LiteralNotPublic(u.Hostname()) {
		return "", errs.Field("url", "webhook_url_not_allowed",
			"url names a loopback, private or link-local address; the operator allows those with --allow-private-upstreams")
	}
	return u.String(), nil
}

func checkPatterns(ps []string) error {
	if len(ps) == 0 || len(ps) > MaxPatterns {
		return errs.Field("events", "invalid_events", "events lists 1 to %d event types or patterns (\"*\", \"tenant.*\")", MaxPatterns)
	}
	for _, p := range ps {
		if !knownPattern(p) {
			return errs.Field("events", "unknown_event_type", "%q names no event type; the types are %s, and a pattern is \"*\" or a prefix and \".*\"",
				errs.Clip(p, 100), eventTypes())
		}
	}
	return nil
}

// Create makes a webhook for events matching patterns and returns it with
// its signing secret, which is stored only sealed under the root key and
// never shown again.
func (s *Service) Create(ctx context.Context, rawURL string, patterns []string, actor tenant.Actor) (Created, error) {
	u, err := s.checkURL(rawURL)
	if err != nil {
		return Created{}, err
	}
	if err := checkPatterns(patterns); err != nil {
		return Created{}, err
	}
	w := Webhook{ID: ids.New(webhookPrefix), URL: u, Events: patterns, CreatedAt: s.cfg.Clock.Now().UTC().Truncate(time.Microsecond)}
	secret := ids.Secret("whsec")
	sealed, err := s.cfg.Sealer.Wrap([]byte(secret), secretBinding(w.ID))
	if err != nil {
		return Created{}, fmt.Errorf("outbox: seal webhook secret: %w", err)
	}
	evs, _ := json.Marshal(patterns)
	err = s.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM webhooks`).Scan(&n); err != nil {
			return fmt.Errorf("outbox: count webhooks: %w", err)
		}
		if n >= MaxWebhooks {
			return errs.E(errs.Conflict, "too_many_webhooks", "the operator has %d webhooks, the most there may be", MaxWebhooks)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhooks (id, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?)`,
			w.ID, w.URL, string(evs), base64.StdEncoding.EncodeToString(sealed), w.CreatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("outbox: insert webhook: %w", err)
		}
		return s.audit(ctx, tx, "webhook.created", w, actor)
	})
	if err != nil {
		return Created{}, err
	}
	return Created{Webhook: w, Secret: secret}, nil
}

// audit records a change of webhook w. The URL's path and query may
// carry a receiver's own token (chat services' hook URLs do): the audit
// trail keeps only its host.
func (s *Service) audit(ctx context.Context, tx *storage.Tx, action string, w Webhook, actor tenant.Actor) error {
	host := ""
	if u, err := url.Parse(w.URL); err == nil {
		host = u.Host
	}
	return s.cfg.Audit.AppendTx(ctx, tx, audit.Event{Principal: actor.Principal, Action: action, Target: w.ID,
		RequestID: actor.RequestID, SourceIP: actor.SourceIP,
		Detail: map[string]string{"host": host, "events": strings.Join(w.Events, ",")}})
}

func scanWebhook(row interface{ Scan(...any) error }) (Webhook, error) {
	var w Webhook
	var evs string
	var created int64
	if err := row.Scan(&w.ID, &w.URL, &evs, &created); err != nil {
		return w, err
	}
	w.CreatedAt = time.UnixMicro(created).UTC()
	if err := json.Unmarshal([]byte(evs), &w.Events); err != nil {
		return w, fmt.Errorf("outbox: stored webhook events: %w", err)
	}
	return w, nil
}

func readWebhook(ctx context.Context, tx *storage.Tx, id string) (Webhook, error) {
	if !ids.Valid(id, webhookPrefix) {
		return Webhook{}, notFound(id)
	}
	w, err := scanWebhook(tx.QueryRow(ctx, `SELECT id, url, events, created_at FROM webhooks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Webhook{}, notFound(id)
	}
	if err != nil {
		return Webhook{}, fmt.Errorf("outbox: read webhook: %w", err)
	}
	return w, nil
}

// Get returns webhook id.
func (s *Service) Get(ctx context.Context, id string) (Webhook, error) {
	var w Webhook
	err := s.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var err error
		w, err = readWebhook(ctx, tx, id)
		return err
	})
	return w, err
}

// List returns a page of the webhooks, by id.
func (s *Service) List(ctx context.Context, limit int, cursor string) (Page[Webhook], error) {
	limit, after, err := page.Bounds(limit, cursor)
	if err != nil {
		return Page[Webhook]{}, err
	}
	out := Page[Webhook]{Items: []Webhook{}}
	err = s.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, url, events, created_at FROM webhooks WHERE id > ? ORDER BY id LIMIT ?`, after, limit+1)
		if err != nil {
			return fmt.Errorf("outbox: list webhooks: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			w, err := scanWebhook(rows)
			if err != nil {
				return fmt.Errorf("outbox: list webhooks: %w", err)
			}
			out.Items = append(out.Items, w)
		}
		return rows.Err()
	})
	if err != nil {
		return Page[Webhook]{}, err
	}
	out.Items, out.NextCursor = page.Trim(out.Items, limit, func(w Webhook) string { return w.ID })
	return out, nil
}

// Delete removes webhook id and its deliveries: nothing more is sent to
// it (an attempt already in flight ends unrecorded).
func (s *Service) Delete(ctx context.Context, id string, actor tenant.Actor) error {
	return s.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		w, err := readWebhook(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE webhook_id = ?`, id); err != nil {
			return fmt.Errorf("outbox: delete deliveries: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM webhooks WHERE id = ?`, id); err != nil {
			return fmt.Errorf("outbox: delete webhook: %w", err)
		}
		return s.audit(ctx, tx, "webhook.deleted", w, actor)
	})
}

// Deliveries returns a page of webhook id's delivery log, newest first.
func (s *Service) Deliveries(ctx context.Context, id string, limit int, cursor string) (Page[Delivery], error) {
	limit, after, err := page.Bounds(limit, cursor)
	if err != nil {
		return Page[Delivery]{}, err
	}
	before := int64(1 << 62)
	if after != "" {
		if before, err = strconv.ParseInt(after, 10, 64); err != nil {
			return Page[Delivery]{}, errs.Field("cursor", "invalid_cursor", "cursor is not one this server issued")
		}
	}
	out := Page[Delivery]{Items: []Delivery{}}
	err = s.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if _, err := readWebhook(ctx, tx, id); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT seq, id, event_id, type, status, attempts, last_status, last_error, next_attempt, delivered_at, created_at
			FROM webhook_deliveries WHERE webhook_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, id, before, limit+1)
		if err != nil {
			return fmt.Errorf("outbox: list deliveries: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var d Delivery
			var next, delivered, created int64
			if err := rows.Scan(&d.seq, &d.ID, &d.EventID, &d.Type, &d.Status, &d.Attempts, &d.LastStatus, &d.LastError,
				&next, &delivered, &created); err != nil {
				return fmt.Errorf("outbox: list deliveries: %w", err)
			}
			d.CreatedAt = time.UnixMicro(created).UTC()
			if d.Status == StatusPending {
				d.NextAttempt = time.UnixMicro(next).UTC()
			}
			if delivered != 0 {
				d.DeliveredAt = time.UnixMicro(delivered).UTC()
			}
			out.Items = append(out.Items, d)
		}
		return rows.Err()
	})
	if err != nil {
		return Page[Delivery]{}, err
	}
	// Padded: a cursor is at least three characters (page.Bounds).
	out.Items, out.NextCursor = page.Trim(out.Items, limit, func(d Delivery) string { return fmt.Sprintf("%020d", d.seq) })
	return out, nil
}
