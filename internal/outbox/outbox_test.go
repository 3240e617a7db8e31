package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/hooksig"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/outbox"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// world is a database with the audit log and the outbox, the log writing
// to the outbox as a node's does.
type world struct {
	db     *storage.DB
	log    *audit.Log
	writer *outbox.Writer
	clock  *clock.Fake
	sealer kms.Sealer
}

func newWorld(t *testing.T, dsn string) *world {
	t.Helper()
	db := storagetest.Open(t, dsn, audit.Migrations(), outbox.Migrations())
	w := &world{db: db, writer: outbox.NewWriter(), clock: clock.NewFake(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))}
	w.log = audit.New(db, audit.Options{Clock: w.clock, Outbox: w.writer.Record})
	t.Cleanup(func() { w.log.Close() })
	rk, _, err := kms.LoadRootKey(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	w.sealer = rk
	return w
}

func (w *world) service(cfg outbox.Config) *outbox.Service {
	cfg.DB, cfg.Writer, cfg.Audit, cfg.Sealer, cfg.Clock = w.db, w.writer, w.log, w.sealer, w.clock
	return outbox.New(cfg)
}

// change audits action for tenant tid in a transaction of its scope, as
// a service's change does, and fails the transaction when fail is set.
func (w *world) change(t *testing.T, tid, action string, fail bool) {
	t.Helper()
	boom := errors.New("the change failed")
	err := w.db.Update(t.Context(), storage.TenantScope(tenant.ID(tid)), func(tx *storage.Tx) error {
		if err := w.log.AppendTx(t.Context(), tx, audit.Event{TenantID: tid, Principal: "operator:tok_1", Action: action, Target: tid,
			Detail: map[string]string{"k": "v"}}); err != nil {
			return err
		}
		if fail {
			return boom
		}
		return nil
	})
	if fail != errors.Is(err, boom) || !fail && err != nil {
		t.Fatalf("change %s: %v", action, err)
	}
}

// outboxRows returns the outbox's events, in order.
func (w *world) outboxRows(t *testing.T) []outbox.Event {
	t.Helper()
	var out []outbox.Event
	err := w.db.View(t.Context(), storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(t.Context(), `SELECT body FROM event_outbox ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b string
			var e outbox.Event
			if err := rows.Scan(&b); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(b), &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEventsCommitWithTheirChange: a lifecycle event is in the outbox
// only if its change committed, from a tenant's transaction (under its
// row-level security on PostgreSQL) and from the group commit alike;
// other audited acts are not published.
func TestEventsCommitWithTheirChange(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		w := newWorld(t, dsn)
		w.change(t, "tenant-a", "tenant.suspended", false)
		w.change(t, "tenant-a", "tenant.resumed", true) // rolled back
		w.change(t, "tenant-b", "user.created", false)  // not a lifecycle event
		w.change(t, "tenant-b", "kms.key_rotated", false)
		if err := w.log.Append(t.Context(), audit.Event{TenantID: "tenant-a", Principal: "system", Action: "tenant.deleted", Target: "tenant-a"}); err != nil {
			t.Fatal(err)
		}
		if err := w.log.Append(t.Context(), audit.Event{Principal: "anon", Action: "tenant.suspended", Outcome: audit.Denied}); err != nil {
			t.Fatal(err)
		}
		got := w.outboxRows(t)
		var types []string
		for _, e := range got {
			types = append(types, e.TenantID+":"+e.Type)
		}
		want := []string{"tenant-a:tenant.suspended", "tenant-b:kms.key_rotated", "tenant-a:tenant.deleted"}
		if strings.Join(types, " ") != strings.Join(want, " ") {
			t.Fatalf("outbox: %v; want %v", types, want)
		}
		e := got[0]
		if !strings.HasPrefix(e.ID, "evt_") || e.Subject != "tenant-a" || e.Principal != "operator:tok_1" || e.Data["k"] != "v" ||
			!e.Time.Equal(w.clock.Now().Truncate(time.Microsecond)) {
			t.Errorf("event: %+v", e)
		}
	})
}

// refuseAll verifies no tenant token.
type refuseAll struct{}

func (refuseAll) Verify(context.Context, string) (context.Context, error) {
	return nil, authn.ErrUnknownToken
}

// operatorToken makes "op-token" an operator's token.
type operatorToken struct{}

func (operatorToken) Verify(ctx context.Context, tok string) (context.Context, error) {
	if tok != "op-token" {
		return nil, authn.ErrUnknownToken
	}
	return authn.WithOperator(ctx, authn.Operator{TokenID: "tok_op"}), nil
}

// startNATS starts the events server and returns it and a JetStream
// handle of an operator's connection.
func startNATS(t *testing.T) (*events.Server, jetstream.JetStream) {
	t.Helper()
	srv, err := events.New(events.Config{Listen: "127.0.0.1:0", Tokens: refuseAll{}, Operators: operatorToken{}, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc, err := nats.Connect(srv.ClientURL(), nats.Token("op-token"), nats.CustomInboxPrefix(events.OperatorInbox), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return srv, js
}

// streamIDs returns the Nats-Msg-Id of every message of the operator's stream.
func streamIDs(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx := t.Context()
	st, err := js.Stream(ctx, events.OperatorStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	return ids
}

// TestRelayExactlyOnceAcrossCrash: a relay that publishes a batch and dies
// before marking it leaves the batch to the next start, which publishes it
// again; the stream holds every event exactly once, in order, each under
// its event id.
func TestRelayExactlyOnceAcrossCrash(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		w := newWorld(t, dsn)
		srv, js := startNATS(t)
		for _, a := range []string{"tenant.onboarding.started", "tenant.activated", "tenant.suspended"} {
			w.change(t, "tenant-a", a, false)
		}
		first := w.service(outbox.Config{Stream: srv})
		first.SetAfterPublish(func() error { return outbox.ErrStopped })
		if _, err := first.RelayOnce(t.Context()); !errors.Is(err, outbox.ErrStopped) {
			t.Fatalf("relay that crashes: %v", err)
		}
		w.change(t, "tenant-a", "tenant.resumed", false)
		// The next start (a new node name: the dead one's claim has lapsed).
		w.clock.Advance(time.Minute)
		second := w.service(outbox.Config{Stream: srv})
		if n, err := second.RelayOnce(t.Context()); err != nil || n != 4 {
			t.Fatalf("relay after the crash: %d %v; want 4", n, err)
		}
		if n, err := second.RelayOnce(t.Context()); err != nil || n != 0 {
			t.Fatalf("relay with nothing left: %d %v", n, err)
		}
		var want []string
		for _, e := range w.outboxRows(t) {
			want = append(want, e.ID)
		}
		if got := streamIDs(t, js); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("stream message ids: %v; want each event once, in order: %v", got, want)
		}
	})
}

// TestRelayWaitsForAnotherNodesClaim: while one node's claim on a batch is
// live, another node relays nothing (one relay at a time keeps the order);
// once it lapses, the other goes on.
func TestRelayWaitsForAnotherNodesClaim(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		w := newWorld(t, dsn)
		w.change(t, "tenant-a", "tenant.suspended", false)
		first := w.service(outbox.Config{})
		first.SetAfterPublish(func() error { return outbox.ErrStopped })
		if _, err := first.RelayOnce(t.Context()); !errors.Is(err, outbox.ErrStopped) {
			t.Fatal(err)
		}
		second := w.service(outbox.Config{})
		if n, err := second.RelayOnce(t.Context()); err != nil || n != 0 {
			t.Fatalf("relay beside a live claim: %d %v; want 0", n, err)
		}
		w.clock.Advance(time.Minute)
		if n, err := second.RelayOnce(t.Context()); err != nil || n != 1 {
			t.Fatalf("relay after the claim lapsed: %d %v; want 1", n, err)
		}
	})
}

// receiver is a webhook endpoint that checks each delivery's signature
// and answers with the next of its statuses (then 200).
type receiver struct {
	*httptest.Server
	secret   func() string
	mu       sync.Mutex
	statuses []int
	got      []outbox.Event
	answered []int
	badSig   int
	headers  []http.Header
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.secret == nil || hooksig.Verify([]byte(r.secret()), req.Header.Get(hooksig.Header), body, time.Now(), 0) != nil {
			r.badSig++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e outbox.Event
		if err := json.Unmarshal(body, &e); err != nil {
			r.badSig++
		}
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.got = append(r.got, e)
		r.answered = append(r.answered, status)
		r.headers = append(r.headers, req.Header.Clone())
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) events() []outbox.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outbox.Event(nil), r.got...)
}

// TestWebhooksRetryUntilDelivered: a webhook gets each event it asked for,
// signed with its secret; answers of 500 are retried with backoff as the
// clock moves, and the delivery log shows the attempts. Events it did not
// ask for, and everything after its webhook is deleted, it never gets.
func TestWebhooksRetryUntilDelivered(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		w := newWorld(t, dsn)
		s := w.service(outbox.Config{AllowPrivate: true})
		ctx := t.Context()
		op := tenant.Actor{Principal: "operator:tok_1"}
		flaky := newReceiver(t, 500, 500)
		gone := newReceiver(t)
		hook, err := s.Create(ctx, flaky.URL+"/hooks", []string{"tenant.*"}, op)
		if err != nil {
			t.Fatal(err)
		}
		flaky.secret = func() string { return hook.Secret }
		doomed, err := s.Create(ctx, gone.URL, []string{"*"}, op)
		if err != nil {
			t.Fatal(err)
		}
		gone.secret = func() string { return doomed.Secret }
		if err := s.Delete(ctx, doomed.ID, op); err != nil {
			t.Fatal(err)
		}
		runtest.Go(t, s.Run)

		w.change(t, "tenant-a", "tenant.suspended", false)
		w.change(t, "tenant-a", "kms.key_rotated", false) // not asked for
		runtest.Eventually(t, "the first attempt", func() bool { return len(flaky.events()) == 1 })
		// The retries come as the clock reaches them (1 s, then 2 s, less jitter).
		runtest.Eventually(t, "the retries", func() bool {
			w.clock.Advance(500 * time.Millisecond)
			return len(flaky.events()) == 3
		})
		got := flaky.events()
		for _, e := range got {
			if e.Type != "tenant.suspended" || e.TenantID != "tenant-a" || e.ID != got[0].ID {
				t.Errorf("delivered %+v", e)
			}
		}
		var log outbox.Page[outbox.Delivery]
		runtest.Eventually(t, "the delivery log", func() bool {
			log, err = s.Deliveries(ctx, hook.ID, 0, "")
			return err == nil && len(log.Items) == 1 && log.Items[0].Status == outbox.StatusDelivered
		})
		d := log.Items[0]
		if d.Attempts != 3 || d.LastStatus != 200 || d.EventID != got[0].ID || d.DeliveredAt.IsZero() || !d.NextAttempt.IsZero() {
			t.Errorf("delivery: %+v", d)
		}
		flaky.mu.Lock()
		if flaky.badSig != 0 || flaky.headers[0].Get("Bulkhead-Event-Id") != got[0].ID {
			t.Errorf("bad signatures %d, headers %v", flaky.badSig, flaky.headers[0])
		}
		flaky.mu.Unlock()
		if n := len(gone.events()); n != 0 {
			t.Errorf("a deleted webhook got %d events", n)
		}
		if _, err := s.Deliveries(ctx, doomed.ID, 0, ""); err == nil {
			t.Error("a deleted webhook's log is still there")
		}
	})
}

// TestWebhookGivesUp: a delivery that keeps failing is failed after
// MaxAttempts, with the last status and error in its log.
func TestWebhookGivesUp(t *testing.T) {
	w := newWorld(t, storagetest.DSN(t, storage.SQLite))
	s := w.service(outbox.Config{AllowPrivate: true, MaxAttempts: 2})
	ctx := t.Context()
	down := newReceiver(t, 503, 503, 503)
	hook, err := s.Create(ctx, down.URL, []string{"tenant.suspended"}, tenant.Actor{Principal: "operator:tok_1"})
	if err != nil {
		t.Fatal(err)
	}
	down.secret = func() string { return hook.Secret }
	runtest.Go(t, s.Run)
	w.change(t, "tenant-a", "tenant.suspended", false)
	runtest.Eventually(t, "the delivery to fail", func() bool {
		w.clock.Advance(time.Second)
		log, err := s.Deliveries(ctx, hook.ID, 0, "")
		return err == nil && len(log.Items) == 1 && log.Items[0].Status == outbox.StatusFailed
	})
	log, _ := s.Deliveries(ctx, hook.ID, 0, "")
	if d := log.Items[0]; d.Attempts != 2 || d.LastStatus != 503 || d.LastError != "answered 503" {
		t.Errorf("failed delivery: %+v", d)
	}
	if n := len(down.events()); n != 2 {
		t.Errorf("attempts received: %d; want 2", n)
	}
}

// TestBackoff: 1 s doubling to 1 h, less at most half at random.
func TestBackoff(t *testing.T) {
	for attempt, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 12: 2048 * time.Second, 13: time.Hour, 40: time.Hour} {
		for range 50 {
			if d := outbox.Backoff(attempt); d > base || d < base/2 {
				t.Fatalf("backoff after attempt %d: %v; want within [%v, %v]", attempt, d, base/2, base)
			}
		}
	}
}
