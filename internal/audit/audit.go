// Package audit is Bulkhead's tamper-evident audit trail.
//
// Every event belongs to a chain: one per tenant, and the platform's own
// (chain ""). Within a chain events are numbered 1, 2, 3, … and each carries
// the SHA-256 of its canonical encoding together with the hash of the event
// before it, so altering a row breaks its hash and removing a row breaks the
// numbering or the link. A head row per chain records the last sequence
// number and hash, so removing the newest events is detected too. Verify
// walks every chain. (An attacker who can rewrite the database can rewrite a
// whole chain; anchoring heads outside the database is future work.)
//
// Appends are group-committed: Append queues the event and waits until the
// batch that holds it is committed, so an event is durable when Append
// returns, without one commit per event.
package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the audit trail's migrations. On PostgreSQL the
// serving role may do with its tables only what the writer does: events
// are inserted and read, never changed or removed; a chain's head is
// inserted, read and moved forward (its seq and hash), never removed or
// moved to another chain. The policies say as much; the grants make the
// database refuse the statements themselves. Those policies, one per
// statement, are none of storage.Rows's kinds, so postgres/001_audit.sql
// writes them out and RowSecurity names no table.
func Migrations() storage.Component {
	c := storage.Embedded("audit", migrations)
	c.Privileges = map[string]string{
		"audit_events": "SELECT, INSERT",
		"audit_heads":  "SELECT, INSERT, UPDATE (seq, hash)",
	}
	return c
}

// Outcome is how an audited act ended.
type Outcome string

// The outcomes.
const (
	Success Outcome = "success"
	Failure Outcome = "failure" // the act was attempted and failed (bad input, conflict, error)
	Denied  Outcome = "denied"  // the caller was not authenticated or not allowed
)

// Event is one audited act.
type Event struct {
	ID        int64             `json:"id"`
	Time      time.Time         `json:"time"`
	TenantID  string            `json:"tenant_id,omitempty"` // "" for platform events
	Seq       int64             `json:"seq"`
	Principal string            `json:"principal"`
	Action    string            `json:"action"`
	Target    string            `json:"target,omitempty"`
	Outcome   Outcome           `json:"outcome"`
	RequestID string            `json:"request_id,omitempty"`
	SourceIP  string            `json:"source_ip,omitempty"`
	Detail    map[string]string `json:"detail,omitempty"`
	PrevHash  string            `json:"prev_hash"`
	Hash      string            `json:"hash"`
}

// genesis is the previous hash of a chain's first event.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// hash returns the hex SHA-256 of e's canonical encoding: a version tag, then
// every field that is stored, each length-prefixed, then the previous hash.
func (e *Event) hash(detail string) string {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	putInt := func(v int64) {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	put("bulkhead-audit-v1")
	put(e.TenantID)
	putInt(e.Seq)
	putInt(e.Time.UnixMicro())
	put(e.Principal)
	put(e.Action)
	put(e.Target)
	put(string(e.Outcome))
	put(e.RequestID)
	put(e.SourceIP)
	put(detail)
	put(e.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}

func encodeDetail(d map[string]string) string {
	if len(d) == 0 {
		return ""
	}
	b, _ := json.Marshal(d) // map keys are sorted: the encoding is canonical
	return string(b)
}

// Log is the audit trail.
type Log struct {
	db    *storage.DB
	clock clock.Clock
	log   *slog.Logger

	reqs      chan *appendReq
	sendMu    sync.RWMutex // Append holds it to send; Close takes it to stop sends
	isClosed  bool
	closed    chan struct{}
	done      chan struct{}
	maxBatch  int
	batchHook func(n int) // observes batch sizes (metrics)
	outbox    func(ctx context.Context, tx *storage.Tx, e Event) error
	changes   atomic.Uint64 // see Changes

	// shares bounds each chain's events in the queue (one batch's worth),
	// so a tenant that floods its chain (a decision log, say) waits for
	// its own events to be written while the other tenants' still pass.
	sharesMu sync.Mutex
	shares   map[string]chan struct{}
}

type appendReq struct {
	ev    Event
	done  chan error
	share chan struct{} // the chain's share, given back once written
}

// Options configure a Log.
type Options struct {
	Clock     clock.Clock
	Logger    *slog.Logger
	MaxBatch  int         // events per commit; default 512
	BatchHook func(n int) // called with each committed batch's size
	// Outbox, if set, sees every event in the transaction that inserts
	// it, once the log has set its time and sequence: an error rolls the
	// transaction back, event and act together. It is how Bulkhead's own
	// lifecycle events reach the transactional outbox (package outbox)
	// in the same commit as the change they report, on every path an
	// event takes (AppendTx and the group commit alike), with no second
	// list of call sites to keep in step with the audited ones.
	Outbox func(ctx context.Context, tx *storage.Tx, e Event) error
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit: log closed")

// New returns a Log writing to db and starts its group-commit writer.
// Close stops it.
func New(db *storage.DB, opts Options) *Log {
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	l := &Log{
		db: db, clock: opts.Clock, log: opts.Logger,
		reqs: make(chan *appendReq, 4096), closed: make(chan struct{}), done: make(chan struct{}),
		maxBatch: opts.MaxBatch, batchHook: opts.BatchHook, outbox: opts.Outbox, shares: map[string]chan struct{}{},
	}
	go l.writer()
	return l
}

// Close stops accepting events, writes the queued ones and stops the writer.
func (l *Log) Close() error {
	l.sendMu.Lock()
	if !l.isClosed {
		l.isClosed = true
		close(l.closed)
	}
	l.sendMu.Unlock()
	<-l.done
	return nil
}

// Changes counts the successful acts recorded with Append and AppendTx
// (the latter once committed) on this node. Every change of state in Bulkhead is
// audited, so a cache of state may keep what it read while Changes has
// not moved since it started reading. Decision records (Enqueue) are not
// changes.
func (l *Log) Changes() uint64 { return l.changes.Load() }

// Append records e and returns once it is durably committed. The time,
// sequence number and hashes are set by the log. Append must not be called
// while holding a storage transaction (the writer needs the database); use
// AppendTx there.
func (l *Log) Append(ctx context.Context, e Event) error {
	// Refusals and failures changed nothing.
	return l.append(ctx, e, e.Outcome == Success || e.Outcome == "")
}

// Record is Append for a successful act that makes a record of its own
// and changes nothing a cache keeps (an access token issued): as durable
// as Append, but Changes does not move, so that a flood of such acts does
// not throw away this node's reads of tenants, clients and tokens
// (package statecache).
func (l *Log) Record(ctx context.Context, e Event) error { return l.append(ctx, e, false) }

func (l *Log) append(ctx context.Context, e Event, change bool) error {
	r, err := l.send(ctx, e)
	if err != nil {
		return err
	}
	if change {
		l.changes.Add(1)
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// The event may still be written; the caller no longer waits for it.
		return fmt.Errorf("audit: append: %w", ctx.Err())
	}
}

// Enqueue hands e to the writer and returns without waiting for its
// commit: the next group commit writes it. It waits only while the
// writer's queue is full, so events are never dropped, but an event
// enqueued just before a crash can be lost. It is for high-rate records
// whose caller must not wait for a disk flush (authorization decisions);
// acts that change state use AppendTx.
func (l *Log) Enqueue(ctx context.Context, e Event) error {
	_, err := l.send(ctx, e)
	return err
}

// share returns chain's share of the queue.
func (l *Log) share(chain string) chan struct{} {
	l.sharesMu.Lock()
	defer l.sharesMu.Unlock()
	s := l.shares[chain]
	if s == nil {
		s = make(chan struct{}, l.maxBatch)
		l.shares[chain] = s
	}
	return s
}

// send queues e for the writer, once e's chain has room in its share.
func (l *Log) send(ctx context.Context, e Event) (*appendReq, error) {
	r := &appendReq{ev: e, done: make(chan error, 1), share: l.share(e.TenantID)}
	select {
	case r.share <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("audit: append: %w", ctx.Err())
	}
	queued := false
	defer func() {
		if !queued {
			<-r.share
		}
	}()
	// Holding the read lock while sending means Close cannot complete, and
	// the writer cannot make its final drain, until this send has happened:
	// a queued event is always written.
	l.sendMu.RLock()
	defer l.sendMu.RUnlock()
	if l.isClosed {
		return nil, ErrClosed
	}
	select {
	case l.reqs <- r:
		queued = true
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("audit: append: %w", ctx.Err())
	}
}

func (l *Log) writer() {
	defer close(l.done)
	batch := make([]*appendReq, 0, l.maxBatch)
	for {
		select {
		case r := <-l.reqs:
			batch = append(batch[:0], r)
		case <-l.closed:
			// Drain what was queued before Close.
			for {
				select {
				case r := <-l.reqs:
					l.commit([]*appendReq{r})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < l.maxBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		l.commit(batch)
	}
}

func (l *Log) commit(batch []*appendReq) {
	err := l.db.Update(context.Background(), storage.PlatformScope(), func(tx *storage.Tx) error {
		events := make([]*Event, len(batch))
		for i, r := range batch {
			events[i] = &r.ev
		}
		if err := lockChains(context.Background(), tx, events); err != nil {
			return err
		}
		heads := map[string]head{}
		if err := l.insertBatch(context.Background(), tx, events, heads); err != nil {
			return err
		}
		return writeHeads(context.Background(), tx, heads)
	})
	if err != nil {
		l.log.Error("audit batch failed", "events", len(batch), "err", err)
	} else if l.batchHook != nil {
		l.batchHook(len(batch))
	}
	for _, r := range batch {
		<-r.share
		r.done <- err
	}
}

// AppendTx records e inside the caller's transaction, so the event commits
// (or not) with the act it records. tx must be in the platform scope or in
// the scope of e's tenant.
func (l *Log) AppendTx(ctx context.Context, tx *storage.Tx, e Event) error {
	if !tx.Scope().IsPlatform() && tx.TenantID() != e.TenantID {
		return fmt.Errorf("audit: event of tenant %q in a transaction of another scope", e.TenantID)
	}
	if err := lockChains(ctx, tx, []*Event{&e}); err != nil {
		return err
	}
	tx.AfterCommit(func() { l.changes.Add(1) })
	heads := map[string]head{}
	if err := l.insert(ctx, tx, &e, heads); err != nil {
		return err
	}
	return writeHeads(ctx, tx, heads)
}

type head struct {
	seq  int64
	hash string
}

// lockChains serializes appends to each chain across nodes: it takes, in a
// fixed order, the lock of every chain the events touch. (On SQLite the
// single writer already serializes them.)
func lockChains(ctx context.Context, tx *storage.Tx, events []*Event) error {
	chains := make([]string, 0, 4)
	for _, e := range events {
		if !slices.Contains(chains, e.TenantID) {
			chains = append(chains, e.TenantID)
		}
	}
	slices.Sort(chains)
	for _, c := range chains {
		if err := tx.Lock(ctx, "audit-chain:"+c); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	}
	return nil
}

func (l *Log) insert(ctx context.Context, tx *storage.Tx, e *Event, heads map[string]head) error {
	detail, err := l.chain(ctx, tx, e, heads)
	if err != nil {
		return err
	}
	err = tx.QueryRow(ctx, `INSERT INTO audit_events (`+insertColumns+`) VALUES `+eventPlaceholders+` RETURNING id`,
		eventArgs(e, detail)...).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("audit: insert event: %w", err)
	}
	return l.toOutbox(ctx, tx, e)
}

// toOutbox hands e to the outbox hook, if any, in e's transaction.
func (l *Log) toOutbox(ctx context.Context, tx *storage.Tx, e *Event) error {
	if l.outbox == nil {
		return nil
	}
	if err := l.outbox(ctx, tx, *e); err != nil {
		return fmt.Errorf("audit: outbox: %w", err)
	}
	return nil
}

// chain links e to its chain's head (read once per batch into heads):
// sequence number, time, previous hash and hash. It returns the encoded detail.
func (l *Log) chain(ctx context.Context, tx *storage.Tx, e *Event, heads map[string]head) (string, error) {
	h, ok := heads[e.TenantID]
	if !ok {
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE chain = ?`, e.TenantID).Scan(&h.seq, &h.hash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			h = head{seq: 0, hash: genesis}
		case err != nil:
			return "", fmt.Errorf("audit: read chain head: %w", err)
		}
	}
	e.Time = l.clock.Now().UTC().Truncate(time.Microsecond)
	e.Seq = h.seq + 1
	e.PrevHash = h.hash
	if e.Outcome == "" {
		e.Outcome = Success
	}
	detail := encodeDetail(e.Detail)
	e.Hash = e.hash(detail)
	heads[e.TenantID] = head{seq: e.Seq, hash: e.Hash}
	return detail, nil
}

const (
	insertColumns     = `chain, seq, time, principal, action, target, outcome, request_id, source_ip, detail, prev_hash, hash`
	eventPlaceholders = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// insertRows bounds the rows of one INSERT of a batch (12 parameters
	// each, well under SQLite's and PostgreSQL's parameter limits).
	insertRows = 200
)

func eventArgs(e *Event, detail string) []any {
	return []any{e.TenantID, e.Seq, e.Time.UnixMicro(), e.Principal, e.Action, e.Target, string(e.Outcome),
		e.RequestID, e.SourceIP, detail, e.PrevHash, e.Hash}
}

// insertBatch writes a group commit's events with multi-row INSERTs, a
// round trip per insertRows events instead of one per event. (Their ids
// are not read back: nobody waits for them.)
func (l *Log) insertBatch(ctx context.Context, tx *storage.Tx, events []*Event, heads map[string]head) error {
	for lo := 0; lo < len(events); lo += insertRows {
		part := events[lo:min(lo+insertRows, len(events))]
		args := make([]any, 0, 12*len(part))
		var q strings.Builder
		q.WriteString(`INSERT INTO audit_events (` + insertColumns + `) VALUES `)
		for i, e := range part {
			detail, err := l.chain(ctx, tx, e, heads)
			if err != nil {
				return err
			}
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(eventPlaceholders)
			args = append(args, eventArgs(e, detail)...)
		}
		if _, err := tx.Exec(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("audit: insert events: %w", err)
		}
		for _, e := range part {
			if err := l.toOutbox(ctx, tx, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeHeads(ctx context.Context, tx *storage.Tx, heads map[string]head) error {
	for chain, h := range heads {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_heads (chain, seq, hash) VALUES (?, ?, ?)
			ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`,
			chain, h.seq, h.hash); err != nil {
			return fmt.Errorf("audit: write chain head: %w", err)
		}
	}
	return nil
}
