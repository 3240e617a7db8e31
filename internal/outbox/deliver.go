package outbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/hooksig"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

const (
	// attemptTimeout bounds one attempt, connection included; leaseTTL,
	// longer, keeps other nodes off a delivery while it is attempted.
	attemptTimeout = 10 * time.Second
	leaseTTL       = 15 * time.Second
	// firstRetry doubles after each failed attempt, up to maxRetry.
	firstRetry = time.Second
	maxRetry   = time.Hour
)

// Backoff is the wait after a delivery's attempt-th failed attempt
// (1, 2, …): 1 s doubling to at most 1 h, less up to half of it at random
// so that endpoints that fail together are not retried together.
func Backoff(attempt int) time.Duration {
	d := maxRetry
	if attempt < 13 {
		d = min(firstRetry<<(attempt-1), maxRetry)
	}
	return d - rand.N(d/2+1)
}

func (s *Service) pokeDeliveries() {
	select {
	case s.deliverWake <- struct{}{}:
	default:
	}
}

// deliverLoop starts due deliveries whenever it is woken (a fan-out or
// a finished attempt on this node) or every pollInterval, within the
// concurrency bounds; it returns once ctx has ended and every attempt it
// started has.
func (s *Service) deliverLoop(ctx context.Context) {
	tick, tc := s.cfg.Clock.NewTicker(pollInterval)
	defer tick.Stop()
	client := s.client()
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		client.CloseIdleConnections()
	}()
	for {
		due, err := s.claimDue(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.WarnContext(ctx, "outbox: claim deliveries", "err", err)
		}
		for _, d := range due {
			wg.Go(func() {
				s.attempt(ctx, client, d)
				s.release(d.webhookID)
				s.pokeDeliveries() // its slot is free for the next due one
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-s.deliverWake:
		case <-tc:
		}
	}
}

// due is a leased delivery with what its attempt needs.
type due struct {
	seq       int64
	webhookID string
	eventID   string
	typ       string
	attempts  int
	url       string
	secret    string // sealed, base64
	body      string
}

// claimDue leases the due deliveries this node has room for: at most
// Concurrency in flight in all, PerEndpoint to one webhook.
func (s *Service) claimDue(ctx context.Context) ([]due, error) {
	s.mu.Lock()
	room := s.cfg.Concurrency - s.total
	s.mu.Unlock()
	if room <= 0 {
		return nil, nil
	}
	var out []due
	err := s.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		out = out[:0]
		now := s.cfg.Clock.Now().UnixMicro()
		q := `SELECT d.seq, d.webhook_id, d.event_id, d.type, d.attempts, w.url, w.secret, e.body
			FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN event_outbox e ON e.event_id = d.event_id
			WHERE d.status = ? AND d.next_attempt <= ? AND d.lease_until <= ? ORDER BY d.next_attempt, d.seq LIMIT ?`
		if tx.Dialect() == storage.Postgres {
			q += ` FOR UPDATE OF d SKIP LOCKED`
		}
		rows, err := tx.Query(ctx, q, StatusPending, now, now, room*4)
		if err != nil {
			return fmt.Errorf("outbox: read due deliveries: %w", err)
		}
		defer rows.Close()
		var cands []due
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.seq, &d.webhookID, &d.eventID, &d.typ, &d.attempts, &d.url, &d.secret, &d.body); err != nil {
				return fmt.Errorf("outbox: read due deliveries: %w", err)
			}
			cands = append(cands, d)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, d := range cands {
			if s.total >= s.cfg.Concurrency || s.inflight[d.webhookID] >= s.cfg.PerEndpoint {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET lease_until = ? WHERE seq = ?`, now+leaseTTL.Microseconds(), d.seq); err != nil {
				return fmt.Errorf("outbox: lease delivery: %w", err)
			}
			s.total++
			s.inflight[d.webhookID]++
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		// Nothing was leased: give the slots back.
		for _, d := range out {
			s.release(d.webhookID)
		}
		return nil, err
	}
	return out, nil
}

func (s *Service) release(webhookID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.inflight[webhookID]--; s.inflight[webhookID] <= 0 {
		delete(s.inflight, webhookID)
	}
}

// attempt posts one delivery and records how it went.
func (s *Service) attempt(ctx context.Context, client *http.Client, d due) {
	status, why := s.post(ctx, client, d)
	if ctx.Err() != nil {
		return // stopping: the lease lapses and the attempt is made again
	}
	d.attempts++
	now := s.cfg.Clock.Now()
	state, next, delivered := StatusPending, now.Add(Backoff(d.attempts)), int64(0)
	switch {
	case why == "" && status >= 200 && status < 300:
		state, delivered = StatusDelivered, now.UnixMicro()
	case why == errSecret || d.attempts >= s.cfg.MaxAttempts:
		state = StatusFailed
	}
	if why == "" && state != StatusDelivered {
		why = "answered " + strconv.Itoa(status)
	}
	octx := context.WithoutCancel(ctx)
	err := s.cfg.DB.Update(octx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(octx, `UPDATE webhook_deliveries SET status = ?, attempts = ?, last_status = ?, last_error = ?, next_attempt = ?,
			lease_until = 0, delivered_at = ? WHERE seq = ?`, state, d.attempts, status, errs.Clip(why, 200), next.UnixMicro(), delivered, d.seq)
		return err
	})
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "outbox: record a delivery", "webhook", d.webhookID, "event", d.eventID, "err", err)
		return
	}
	if state == StatusFailed {
		s.cfg.Logger.WarnContext(ctx, "outbox: webhook delivery failed for good", "webhook", d.webhookID, "event", d.eventID,
			"attempts", d.attempts, "last_error", errs.Clip(why, 200))
	}
}

const errSecret = "the webhook's secret does not open (was the root key replaced?); make the webhook again"

// post sends d's event to its webhook, signed; it returns the answer's
// status, or why there was none.
func (s *Service) post(ctx context.Context, client *http.Client, d due) (int, string) {
	sealed, err := base64.StdEncoding.DecodeString(d.secret)
	if err != nil {
		return 0, errSecret
	}
	secret, err := s.cfg.Sealer.Unwrap(sealed, secretBinding(d.webhookID))
	if err != nil {
		return 0, errSecret
	}
	defer clear(secret)
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	body := []byte(d.body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		return 0, "the request could not be made"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Bulkhead-Webhook/1")
	req.Header.Set("Bulkhead-Event-Id", d.eventID)
	req.Header.Set("Bulkhead-Event-Type", d.typ)
	req.Header.Set(hooksig.Header, hooksig.Sign(secret, s.cfg.Clock.Now(), body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, ""
}

// client reaches only public addresses unless private ones are allowed,
// through no proxy, and follows no redirect (a 3xx is a failed attempt).
func (s *Service) client() *http.Client {
	d := netguard.Dialer(5*time.Second, s.cfg.AllowPrivate)
	return &http.Client{
		Timeout: attemptTimeout,
		Transport: &http.Transport{DialContext: d.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: attemptTimeout},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
