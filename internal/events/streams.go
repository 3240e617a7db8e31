package events

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// The HTTP side of a tenant's streams, for applications without a NATS
// client: publish, pull and acknowledge through Bulkhead's own connection,
// the tenant always the caller's (never named by the request). A "stream"
// here is a subject under the tenant's prefix: "orders" is
// t.<tenant>.orders in the tenant's JetStream stream, "fifo.<group>" a
// message of a FIFO group (see FIFOPartitions). What the request names is
// checked to be one; nothing it says can reach past t.<tenant>.

// Limits of the HTTP side.
const (
	MaxPull      = 256              // messages one pull returns at most
	MaxPullWait  = 20 * time.Second // how long a pull may wait for messages
	MaxAcks      = 256              // ack ids one call takes at most
	httpAckWait  = 30 * time.Second // a pulled message not acked by then is delivered again
	fifoPollStep = 50 * time.Millisecond
	// maxPullBytes bounds the messages of one pull (their JSON, base64, is
	// a third larger): a tenant's pulls hold the node's memory in step.
	maxPullBytes = 8 << 20
	noWaitExpiry = 100 * time.Millisecond // a pull with wait_ms 0 and more than one message
	// MaxMessageSize is the largest message a tenant may publish.
	MaxMessageSize = streamMaxMsgSize
)

// maxStreamName bounds a stream name; maxStreamTokens its dot-separated parts.
const (
	maxStreamName   = 128
	maxStreamTokens = 8
	maxConsumerName = 32
)

// ParseStream checks a stream name from a request: dot-separated tokens
// of letters, digits, '-' and '_' (no wildcard, no empty token), not one of
// the reserved forms ("p…" holds FIFO partitions; "fifo" alone or
// "fifo.<group>"). forPull allows "fifo" alone (every group).
func ParseStream(name string, forPull bool) error {
	bad := func(why string) error {
		return errs.Field("stream", "invalid_stream", "stream %q: %s", clip(name), why)
	}
	if name == "" || len(name) > maxStreamName {
		return bad(fmt.Sprintf("a stream name is 1 to %d characters", maxStreamName))
	}
	tokens := strings.Split(name, ".")
	if len(tokens) > maxStreamTokens {
		return bad(fmt.Sprintf("at most %d dot-separated parts", maxStreamTokens))
	}
	for _, t := range tokens {
		if !validToken(t, maxStreamName) {
			return bad("each dot-separated part is letters, digits, '-' or '_' (no wildcards, no empty part)")
		}
	}
	switch tokens[0] {
	case "p":
		return bad(`"p" is reserved (FIFO partitions): publish to "fifo.<group>"`)
	case "fifo":
		if len(tokens) == 1 && forPull {
			return nil
		}
		if len(tokens) != 2 {
			return bad(`a FIFO stream is "fifo.<group>"`)
		}
	}
	return nil
}

// ParseConsumer checks a consumer name from a request.
func ParseConsumer(name string) error {
	if !validToken(name, maxConsumerName) {
		return errs.Field("consumer", "invalid_consumer", "a consumer name is 1 to %d letters, digits, '-' or '_'", maxConsumerName)
	}
	return nil
}

func validToken(t string, max int) bool {
	if t == "" || len(t) > max {
		return false
	}
	for _, c := range []byte(t) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// clip keeps an echoed name short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Publication is a message to publish.
type Publication struct {
	Data        []byte
	ContentType string // kept as the message's Content-Type header, if set
	// ID de-duplicates: a second message with the same id within the
	// stream's window is dropped (JetStream's Nats-Msg-Id).
	ID string
}

// PubAck is the stream's receipt of a publication.
type PubAck struct {
	Seq       uint64
	Duplicate bool
}

// maxMsgID bounds a de-duplication id.
const maxMsgID = 128

// Publish stores p in tenant tid's stream under t.<tid>.<stream> and
// returns once JetStream has it. tier gives the stream its limits when
// this is the tenant's first use of it.
func (s *Server) Publish(ctx context.Context, tid tenant.ID, tier tenants.Tier, stream string, p Publication) (PubAck, error) {
	if err := ParseStream(stream, false); err != nil {
		return PubAck{}, err
	}
	if len(p.ID) > maxMsgID || strings.ContainsAny(p.ID, "\r\n") {
		return PubAck{}, errs.Field("id", "invalid_message_id", "a message id is at most %d characters on one line", maxMsgID)
	}
	if len(p.Data) > streamMaxMsgSize {
		return PubAck{}, &errs.Error{Kind: errs.TooLarge, Code: "message_too_large", Detail: fmt.Sprintf("a message is at most %d bytes", streamMaxMsgSize)}
	}
	m := nats.NewMsg("t." + string(tid) + "." + stream)
	m.Data = p.Data
	if p.ContentType != "" {
		m.Header.Set("Content-Type", p.ContentType)
	}
	var opts []jetstream.PublishOpt
	if p.ID != "" {
		opts = append(opts, jetstream.WithMsgID(p.ID))
	}
	opts = append(opts, jetstream.WithExpectStream(StreamName(string(tid))))
	var ack *jetstream.PubAck
	err := s.using(ctx, string(tid), tier, func(pl *place) error {
		var err error
		if ack, err = pl.js.PublishMsg(ctx, m, opts...); err != nil {
			return publishError(err)
		}
		return nil
	})
	if err != nil {
		return PubAck{}, err
	}
	return PubAck{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// publishError turns JetStream's refusal into the caller's error: a stream
// at its tier's limit is the tenant's to resolve (JetStream's "store
// failed": maximum messages or bytes exceeded, with DiscardNew), anything
// else is ours.
func publishError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jsErrCodeStreamStoreFailed || apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum) {
		return &errs.Error{Kind: errs.Conflict, Code: "stream_full", Err: err,
			Detail: "the tenant's stream is at its tier's limit (messages or bytes); it takes new messages once older ones are removed"}
	}
	return unavailable(err)
}

// jsErrCodeStreamStoreFailed is nats-server's JSStreamStoreFailedF, which
// nats.go does not name.
const jsErrCodeStreamStoreFailed jetstream.ErrorCode = 10077

func unavailable(err error) error {
	return &errs.Error{Kind: errs.Unavailable, Code: "streams_unavailable", Detail: "the event streams are unavailable; retry shortly", Err: err}
}

// Pull is a request for messages.
type Pull struct {
	Consumer string        // the durable consumer, made at its first pull
	Max      int           // at most this many messages (1..MaxPull)
	Wait     time.Duration // wait up to this long for a first message (0..MaxPullWait)
}

// Delivery is a pulled message.
type Delivery struct {
	AckID       string // acknowledge with Ack; opaque
	Stream      string // the subject under the tenant's prefix ("orders", "fifo.<group>")
	Seq         uint64
	Data        []byte
	ContentType string
	ID          string // its de-duplication id, if it had one
	Time        time.Time
	Deliveries  uint64 // 1 the first time; more once an ack wait passed
}

// PullMessages delivers up to p.Max messages of stream to consumer
// p.Consumer of tenant tid, waiting up to p.Wait for the first. Each stays
// in flight until acknowledged (Ack) or its ack wait (30 s) passes, then is
// delivered again. From "fifo" (every group) a pull takes at most one
// message per FIFO partition, each partition's consumer holding one in
// flight: a group's messages come in order, one at a time, while other
// groups go on.
func (s *Server) PullMessages(ctx context.Context, tid tenant.ID, tier tenants.Tier, stream string, p Pull) ([]Delivery, error) {
	if err := ParseStream(stream, true); err != nil {
		return nil, err
	}
	if err := ParseConsumer(p.Consumer); err != nil {
		return nil, err
	}
	if p.Max < 1 || p.Max > MaxPull {
		return nil, errs.Field("max_messages", "invalid_max_messages", "max_messages is 1 to %d", MaxPull)
	}
	if p.Wait < 0 || p.Wait > MaxPullWait {
		return nil, errs.Field("wait_ms", "invalid_wait", "wait_ms is 0 to %d", MaxPullWait.Milliseconds())
	}
	// The consumers are found (or made) first; then the wait.
	cs, err := s.consumers(ctx, tid, tier, stream, p.Consumer)
	if err != nil {
		return nil, err
	}
	if stream == "fifo" {
		return pullFIFO(ctx, tid, cs, p)
	}
	return fetch(ctx, tid, cs[0], p.Max, p.Wait)
}

// MakeConsumer makes (or finds) tenant tid's durable pull consumer of
// stream, as a pull would, and returns its JetStream name(s): one, or for
// "fifo" one per partition. A NATS client then fetches from them by name
// (on a shared account it may not make consumers itself:
// streamPermissions).
func (s *Server) MakeConsumer(ctx context.Context, tid tenant.ID, tier tenants.Tier, stream, consumer string) ([]string, error) {
	if err := ParseStream(stream, true); err != nil {
		return nil, err
	}
	if err := ParseConsumer(consumer); err != nil {
		return nil, err
	}
	cs, err := s.consumers(ctx, tid, tier, stream, consumer)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.CachedInfo().Name
	}
	return names, nil
}

// consumers makes (or finds) tenant tid's consumer of stream: one, or for
// "fifo" one per partition.
func (s *Server) consumers(ctx context.Context, tid tenant.ID, tier tenants.Tier, stream, consumer string) ([]jetstream.Consumer, error) {
	var cs []jetstream.Consumer
	err := s.using(ctx, string(tid), tier, func(pl *place) error {
		if stream == "fifo" {
			for n := range FIFOPartitions {
				c, err := s.consumer(ctx, pl, tid, consumerName("fifo", consumer, n), "t."+string(tid)+".p."+strconv.Itoa(n)+".*", 1)
				if err != nil {
					// Not half a set: partitions' consumers made before a
					// refusal (the tier's consumer limit) would hold the
					// tenant's consumer places for a day, unused.
					for m := range n {
						name := consumerName("fifo", consumer, m)
						s.made.Delete("c/" + string(tid) + "/" + pl.account + "/" + name)
						_ = pl.js.DeleteConsumer(ctx, StreamName(string(tid)), name)
					}
					return err
				}
				cs = append(cs, c)
			}
			return nil
		}
		filter := "t." + string(tid) + "." + stream
		pending := 1000
		if strings.HasPrefix(stream, "fifo.") {
			// One group: its messages sit in one partition, under their group.
			filter, pending = "t."+string(tid)+".p.*."+strings.TrimPrefix(stream, "fifo."), 1
		}
		c, err := s.consumer(ctx, pl, tid, consumerName(stream, consumer, -1), filter, pending)
		cs = append(cs, c)
		return err
	})
	if err != nil {
		return nil, err
	}
	return cs, nil
}

// pullFIFO takes one message from each FIFO partition that has one free,
// polling until the wait ends or some arrive. (Waiting pull requests on
// eight consumers at once would leave messages delivered to a request the
// HTTP answer no longer waits for, in flight until their ack wait.)
func pullFIFO(ctx context.Context, tid tenant.ID, cs []jetstream.Consumer, p Pull) ([]Delivery, error) {
	deadline := time.Now().Add(p.Wait)
	for {
		var out []Delivery
		for _, c := range cs {
			if len(out) >= p.Max {
				break
			}
			got, err := fetch(ctx, tid, c, 1, 0)
			if err != nil {
				return out, err
			}
			out = append(out, got...)
		}
		if len(out) > 0 || !time.Now().Before(deadline) {
			return out, nil
		}
		t := time.NewTimer(fifoPollStep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// consumerName is the durable name of a tenant's HTTP consumer: its name
// and a hash of the stream it reads (two streams' consumers of one name
// are two consumers), and for FIFO the partition.
func consumerName(stream, consumer string, partition int) string {
	h := sha256.Sum256([]byte(stream))
	name := "h_" + hex.EncodeToString(h[:6]) + "_" + consumer
	if partition >= 0 {
		name += "_p" + strconv.Itoa(partition)
	}
	return name
}

// consumer makes (or finds) a durable pull consumer on tenant tid's
// stream. Consumers idle for a day are removed by JetStream.
func (s *Server) consumer(ctx context.Context, pl *place, tid tenant.ID, name, filter string, maxPending int) (jetstream.Consumer, error) {
	key := "c/" + string(tid) + "/" + pl.account + "/" + name
	if v, ok := s.made.Load(key); ok && v.(madeConsumer).nc == pl.nc && time.Since(v.(madeConsumer).at) < time.Hour {
		// Fresh, and on the connection this request uses (one dropped
		// from s.accounts is closed soon after): JetStream removes a
		// consumer only after a day idle.
		return v.(madeConsumer).c, nil
	}
	c, err := pl.js.CreateOrUpdateConsumer(ctx, StreamName(string(tid)), jetstream.ConsumerConfig{
		Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy, AckWait: httpAckWait,
		MaxAckPending: maxPending, InactiveThreshold: 24 * time.Hour, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMaximumConsumersLimit {
			return nil, &errs.Error{Kind: errs.Conflict, Code: "consumer_limit", Err: err,
				Detail: "the tenant's stream has as many consumers as its tier allows; reuse a consumer name"}
		}
		return nil, unavailable(err)
	}
	s.made.Store(key, madeConsumer{c: c, nc: pl.nc, at: time.Now()})
	return c, nil
}

// madeConsumer is a consumer this node made or found, on which
// connection, and when.
type madeConsumer struct {
	c  jetstream.Consumer
	nc *nats.Conn
	at time.Time
}

// fetch takes up to max messages from c, waiting up to wait for the first
// (not at all for 0).
func fetch(ctx context.Context, tid tenant.ID, c jetstream.Consumer, batchSize int, wait time.Duration) ([]Delivery, error) {
	var batch jetstream.MessageBatch
	var err error
	switch {
	case wait <= 0 && batchSize == 1: // one message is at most MaxMessageSize
		batch, err = c.FetchNoWait(1)
	default:
		// At most maxPullBytes (JetStream stops at the byte budget; a
		// message that does not fit waits for the next pull). nats.go
		// takes a byte budget only with an expiry, so "no wait" is a
		// short one. Under the request's context: a client that goes
		// away ends the fetch, and JetStream drops a pull request nobody
		// listens to (rather than deliver to it, in flight to nobody).
		fctx, cancel := context.WithTimeout(ctx, max(wait, noWaitExpiry))
		defer cancel()
		batch, err = c.Fetch(batchSize, jetstream.FetchContext(fctx), jetstream.FetchMaxBytes(maxPullBytes))
	}
	if err != nil {
		return nil, unavailable(err)
	}
	prefix := "t." + string(tid) + "."
	out := []Delivery{}
	for m := range batch.Messages() {
		d := Delivery{AckID: base64.RawURLEncoding.EncodeToString([]byte(m.Reply())), Data: m.Data(),
			ContentType: m.Headers().Get("Content-Type"), ID: m.Headers().Get(jetstream.MsgIDHeader)}
		d.Stream = strings.TrimPrefix(m.Subject(), prefix)
		if rest, ok := strings.CutPrefix(d.Stream, "p."); ok { // a FIFO partition: show the group's own name
			if _, group, ok := strings.Cut(rest, "."); ok {
				d.Stream = "fifo." + group
			}
		}
		if md, err := m.Metadata(); err == nil {
			d.Seq, d.Time, d.Deliveries = md.Sequence.Stream, md.Timestamp.UTC(), md.NumDelivered
		}
		out = append(out, d)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return out, unavailable(err)
	}
	return out, nil
}

// AckResult says which acknowledgements took.
type AckResult struct {
	Acked int
	// Expired are ack ids JetStream did not take: their consumer is gone,
	// or the message was acknowledged already.
	Expired []string
}

// Ack acknowledges delivered messages of tenant tid (or, with nak, asks
// for their redelivery now). Every id must be one of the tenant's: one
// that is not, or is not an ack id at all, refuses the whole call with the
// same answer (an id of another tenant's message says nothing of it).
func (s *Server) Ack(ctx context.Context, tid tenant.ID, tier tenants.Tier, ackIDs []string, nak bool) (AckResult, error) {
	if len(ackIDs) == 0 || len(ackIDs) > MaxAcks {
		return AckResult{}, errs.Field("ack_ids", "invalid_ack_ids", "send 1 to %d ack ids", MaxAcks)
	}
	subjects := make([]string, len(ackIDs))
	for i, id := range ackIDs {
		subj, ok := ackSubject(tid, id)
		if !ok {
			return AckResult{}, errs.Field("ack_ids", "invalid_ack_id", "ack_ids[%d] is not an ack id of a message this tenant pulled", i)
		}
		subjects[i] = subj
	}
	body := []byte("+ACK")
	if nak {
		body = []byte("-NAK")
	}
	res := AckResult{Expired: []string{}}
	err := s.using(ctx, string(tid), tier, func(pl *place) error {
		return ackAll(ctx, pl.nc, subjects, ackIDs, body, &res)
	})
	return res, err
}

// ackAll sends the acks on nc and counts which took. Requests, not
// publishes: JetStream answers an ack that has a reply subject once it
// has applied it (AckSync). One that is no longer pending gets no answer
// at all: the ids go together, under one deadline, not 2 s each in turn.
func ackAll(ctx context.Context, nc *nats.Conn, subjects, ackIDs []string, body []byte, res *AckResult) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	answers := make([]error, len(subjects))
	var wg sync.WaitGroup
	for i, subj := range subjects {
		wg.Go(func() { _, answers[i] = nc.RequestWithContext(rctx, subj, body) })
	}
	wg.Wait()
	for i, err := range answers {
		switch {
		case err == nil:
			res.Acked++
		case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			res.Expired = append(res.Expired, ackIDs[i])
		default:
			return unavailable(err)
		}
	}
	return nil
}

// ackSubject decodes an ack id and checks that it acknowledges a message
// of tenant tid's stream: $JS.ACK.<stream>.<consumer>.<delivered>.<stream
// seq>.<consumer seq>.<time>.<pending> (or the form with a domain and an
// account hash before the stream, and a random token after).
func ackSubject(tid tenant.ID, id string) (string, bool) {
	if len(id) > 512 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return "", false
	}
	subj := string(b)
	tokens := strings.Split(subj, ".")
	stream := ""
	switch len(tokens) {
	case 9:
		stream = tokens[2]
	case 11, 12:
		stream = tokens[4]
	default:
		return "", false
	}
	if tokens[0] != "$JS" || tokens[1] != "ACK" || stream != StreamName(string(tid)) {
		return "", false
	}
	for _, t := range tokens[2:] {
		if !validToken(t, 256) {
			return "", false
		}
	}
	return subj, true
}
