package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

// Publisher puts an event on the operator's stream, with id as its
// Nats-Msg-Id (events.Server.PublishEvent).
type Publisher interface {
	PublishEvent(ctx context.Context, typ, id string, body []byte) error
}

// Config configures a Service.
type Config struct {
	DB     *storage.DB
	Writer *Writer     // the Writer whose Record the audit log calls
	Audit  *audit.Log  // audits webhooks made and removed
	Sealer kms.Sealer  // seals webhook secrets (the root key)
	Stream Publisher   // the operator's stream; nil without the events server
	Clock  clock.Clock // default: the system clock
	Logger *slog.Logger
	// AllowPrivate lets webhooks reach loopback, private and link-local
	// addresses (--allow-private-upstreams).
	AllowPrivate bool
	// MaxAttempts bounds a delivery's attempts (default 20: about nine
	// hours of retries).
	MaxAttempts int
	// Concurrency bounds the deliveries in flight (default 32), and
	// PerEndpoint those to one webhook (default 4).
	Concurrency, PerEndpoint int
}

// Service relays the outbox and delivers webhooks (Run), and keeps the
// operator's webhooks.
type Service struct {
	cfg  Config
	node string // this node's name in claims
	// afterPublish, if set (tests), runs after a batch is published and
	// before it is marked; an error stands for a crash there.
	afterPublish func() error
	deliverWake  chan struct{}

	mu       sync.Mutex
	inflight map[string]int // webhook id → deliveries in flight
	total    int
}

// New returns the outbox's service.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 20
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.PerEndpoint <= 0 {
		cfg.PerEndpoint = 4
	}
	if cfg.Writer == nil {
		cfg.Writer = NewWriter()
	}
	return &Service{cfg: cfg, node: ids.New("node"), deliverWake: make(chan struct{}, 1), inflight: map[string]int{}}
}

const (
	relayBatch = 100
	// claimTTL is how long a node's claim on a batch keeps other nodes
	// from relaying; far longer than a batch takes.
	claimTTL = 15 * time.Second
	// pollInterval is how often Run looks for rows that another node
	// wrote (this node's own commits wake it at once) and for due
	// deliveries.
	pollInterval = time.Second
	// retention is how long a published event's row is kept: its
	// deliveries read their body from it, and they give up well before.
	retention = 7 * 24 * time.Hour
)

// Run relays the outbox and delivers webhooks until ctx ends; it returns
// once every delivery it started has ended.
func (s *Service) Run(ctx context.Context) error {
	if err := s.resetClaims(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it began: nothing to report
		}
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.relayLoop(ctx) })
	wg.Go(func() { s.deliverLoop(ctx) })
	wg.Wait()
	return nil
}

func (s *Service) relayLoop(ctx context.Context) {
	tick, tc := s.cfg.Clock.NewTicker(pollInterval)
	defer tick.Stop()
	lastPrune := time.Time{}
	for {
		n, err := s.relay(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.WarnContext(ctx, "outbox: relay", "err", err)
		}
		if now := s.cfg.Clock.Now(); now.Sub(lastPrune) > time.Hour {
			lastPrune = now
			if err := s.prune(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.WarnContext(ctx, "outbox: prune", "err", err)
			}
		}
		if n == relayBatch && err == nil {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			return
		case <-s.cfg.Writer.wake:
		case <-tc:
		}
	}
}

type pending struct {
	id          int64
	eventID     string
	typ, body   string
	tenantID    string
	createdAtUS int64
}

// relay claims, publishes, fans out and marks one batch; it returns the
// batch's size.
func (s *Service) relay(ctx context.Context) (int, error) {
	batch, err := s.claim(ctx)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	published := batch
	if s.cfg.Stream != nil {
		for i, p := range batch {
			if err = s.cfg.Stream.PublishEvent(ctx, p.typ, p.eventID, []byte(p.body)); err != nil {
				// The rest wait for the next round, in order.
				published = batch[:i]
				err = fmt.Errorf("outbox: publish %s: %w", p.eventID, err)
				break
			}
		}
	}
	if s.afterPublish != nil {
		if herr := s.afterPublish(); herr != nil {
			return 0, herr
		}
	}
	if len(published) > 0 {
		if merr := s.markPublished(ctx, published); merr != nil {
			return 0, merr
		}
	}
	return len(published), err
}

// claim takes the next batch of unpublished rows for this node, unless
// another node's claim is live.
func (s *Service) claim(ctx context.Context) ([]pending, error) {
	var out []pending
	err := s.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		out = out[:0]
		ok, err := tx.TryLock(ctx, "outbox-relay")
		if err != nil || !ok {
			return err
		}
		now := s.cfg.Clock.Now().UnixMicro()
		var others int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM event_outbox WHERE published_at = 0 AND claimed_until > ? AND claimed_by <> ?`,
			now, s.node).Scan(&others); err != nil {
			return fmt.Errorf("outbox: read claims: %w", err)
		}
		if others > 0 {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT id, event_id, type, body, tenant_id, created_at FROM event_outbox
			WHERE published_at = 0 ORDER BY id LIMIT ?`, relayBatch)
		if err != nil {
			return fmt.Errorf("outbox: read pending events: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var p pending
			if err := rows.Scan(&p.id, &p.eventID, &p.typ, &p.body, &p.tenantID, &p.createdAtUS); err != nil {
				return fmt.Errorf("outbox: read pending events: %w", err)
			}
			out = append(out, p)
		}
		if err := rows.Err(); err != nil || len(out) == 0 {
			return err
		}
		rows.Close()
		if _, err := tx.Exec(ctx, `UPDATE event_outbox SET claimed_by = ?, claimed_until = ? WHERE published_at = 0 AND id BETWEEN ? AND ?`,
			s.node, now+claimTTL.Microseconds(), out[0].id, out[len(out)-1].id); err != nil {
			return fmt.Errorf("outbox: claim events: %w", err)
		}
		return nil
	})
	return out, err
}

// markPublished fans a published batch out to the webhooks that ask for
// its types and marks it published, in one transaction: both happen, or
// neither and the batch is relayed again (the stream drops the copies;
// the fan-out's unique key drops its own).
func (s *Service) markPublished(ctx context.Context, batch []pending) error {
	fanned := false
	err := s.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		fanned = false
		hooks, err := subscriptions(ctx, tx)
		if err != nil {
			return err
		}
		now := s.cfg.Clock.Now().UnixMicro()
		for _, p := range batch {
			for _, h := range hooks {
				if !Match(h.events, p.typ) {
					continue
				}
				if _, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, webhook_id, event_id, type, status, next_attempt, created_at)
					VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
					ids.New(deliveryPrefix), h.id, p.eventID, p.typ, StatusPending, now, now); err != nil {
					return fmt.Errorf("outbox: fan out: %w", err)
				}
				fanned = true
			}
			if _, err := tx.Exec(ctx, `UPDATE event_outbox SET published_at = ?, claimed_by = '', claimed_until = 0 WHERE id = ?`,
				now, p.id); err != nil {
				return fmt.Errorf("outbox: mark published: %w", err)
			}
		}
		return nil
	})
	if err == nil && fanned {
		s.pokeDeliveries()
	}
	return err
}

type subscription struct {
	id     string
	events []string
}

func subscriptions(ctx context.Context, tx *storage.Tx) ([]subscription, error) {
	rows, err := tx.Query(ctx, `SELECT id, events FROM webhooks ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("outbox: read webhooks: %w", err)
	}
	defer rows.Close()
	var out []subscription
	for rows.Next() {
		var h subscription
		var ev string
		if err := rows.Scan(&h.id, &ev); err != nil {
			return nil, fmt.Errorf("outbox: read webhooks: %w", err)
		}
		if err := json.Unmarshal([]byte(ev), &h.events); err != nil {
			return nil, fmt.Errorf("outbox: stored webhook events: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// resetClaims drops, on SQLite, the claims and leases a node that
// stopped left (a killed node's): an SQLite database has one node, this
// one, so they are no other node's. On PostgreSQL they lapse by
// themselves, within claimTTL and leaseTTL.
func (s *Service) resetClaims(ctx context.Context) error {
	if s.cfg.DB.Dialect() != storage.SQLite {
		return nil
	}
	return s.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE event_outbox SET claimed_by = '', claimed_until = 0 WHERE claimed_until > 0`); err != nil {
			return fmt.Errorf("outbox: reset claims: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET lease_until = 0 WHERE lease_until > 0`); err != nil {
			return fmt.Errorf("outbox: reset leases: %w", err)
		}
		return nil
	})
}

// prune removes published events past retention and deliveries that
// ended (delivered or failed) as long ago.
func (s *Service) prune(ctx context.Context) error {
	before := s.cfg.Clock.Now().Add(-retention).UnixMicro()
	return s.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM event_outbox WHERE published_at > 0 AND published_at < ?`, before); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM webhook_deliveries WHERE status <> ? AND created_at < ?`, StatusPending, before)
		return err
	})
}

// ErrStopped stands for a crash in tests (afterPublish).
var ErrStopped = errors.New("outbox: stopped")

// eventTypes lists Types for error messages.
func eventTypes() string { return strings.Join(Types, ", ") }
