package main

// The event-stream comparison (-events-duration): a tenant publishing and
// consuming through Bulkhead's NATS (its token, the auth callout, the
// tenant's permissions and stream) beside a plain nats-server process of
// the same version with a static user (raw JetStream), each its own
// process, interleaved, with each process's CPU per message.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// eventsBatch is how many messages one consume operation fetches (and
// acknowledges, each).
const eventsBatch = 100

// natsSide is one side of the comparison: conns connections, each with
// its JetStream context.
type natsSide struct {
	tid   string // the tenant whose stream it is (T_<tid>, subjects t.<tid>.>)
	conns []*nats.Conn
	js    []jetstream.JetStream
	next  atomic.Uint64
	cons  atomic.Pointer[jetstream.Consumer]
	reset sync.Mutex // one remake of the consumer at a time
}

func dialSide(url, tid string, conns int, opts ...nats.Option) (*natsSide, error) {
	s := &natsSide{tid: tid}
	for range conns {
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			s.close()
			return nil, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			s.close()
			return nil, err
		}
		s.conns, s.js = append(s.conns, nc), append(s.js, js)
	}
	return s, nil
}

func (s *natsSide) close() {
	for _, c := range s.conns {
		c.Close()
	}
}

func (s *natsSide) pick() jetstream.JetStream { return s.js[s.next.Add(1)%uint64(len(s.js))] }

// publish is one JetStream publish of 256 bytes, its ack awaited.
func (s *natsSide) publish(body []byte) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		_, err := s.pick().Publish(ctx, "t."+s.tid+".orders", body)
		return err == nil, nil
	}
}

// consume fetches eventsBatch messages and acknowledges each; a consumer
// that reached the end of the stream is made again from its start (so a
// short stream serves a long phase; both sides alike).
func (s *natsSide) consume(ctx context.Context) (bool, error) {
	c := s.cons.Load()
	if c == nil {
		if err := s.resetConsumer(ctx, nil); err != nil {
			return false, err
		}
		c = s.cons.Load()
	}
	b, err := (*c).FetchNoWait(eventsBatch)
	if err != nil {
		return false, nil
	}
	n := 0
	for m := range b.Messages() {
		m.Ack()
		n++
	}
	if n < eventsBatch {
		if err := s.resetConsumer(ctx, c); err != nil {
			return false, err
		}
	}
	return n > 0, nil
}

// resetConsumer makes the consumer again from the stream's start, unless
// another worker did since used was loaded.
func (s *natsSide) resetConsumer(ctx context.Context, used *jetstream.Consumer) error {
	s.reset.Lock()
	defer s.reset.Unlock()
	if s.cons.Load() != used {
		return nil
	}
	js := s.pick()
	_ = js.DeleteConsumer(ctx, "T_"+s.tid, "bench")
	c, err := js.CreateOrUpdateConsumer(ctx, "T_"+s.tid, jetstream.ConsumerConfig{Durable: "bench",
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 100_000, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("make the bench consumer: %w", err)
	}
	s.cons.Store(&c)
	return nil
}

// eventsPhase measures publish (phase events_pub_<side>) and consume
// (events_sub_<side>) through Bulkhead's NATS with a tenant token and
// through the plain server with its static user, interleaved.
func (l *loader) eventsPhase(ctx context.Context, o options, tid string, out io.Writer) error {
	tl, err := l.tenantLoader(ctx, tid, "events:publish", "events:subscribe")
	if err != nil {
		return err
	}
	token := strings.TrimPrefix(tl.auth, "Bearer ")
	bulkhead, err := dialSide(o.natsURL, tid, o.conns, nats.Token(token), nats.CustomInboxPrefix("_INBOX_"+tid))
	if err != nil {
		return fmt.Errorf("connect to Bulkhead's NATS with the tenant's token: %w", err)
	}
	defer bulkhead.close()
	user, pass, _ := strings.Cut(o.natsRawUser, ":")
	raw, err := dialSide(o.natsRawURL, tid, o.conns, nats.UserInfo(user, pass))
	if err != nil {
		return fmt.Errorf("connect to the plain nats-server: %w", err)
	}
	defer raw.close()
	// The plain server's stream, configured as Bulkhead makes a tenant's.
	if _, err := raw.js[0].CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "T_" + tid, Subjects: []string{"t." + tid + ".>"},
		Storage: jetstream.FileStorage, MaxBytes: 4 << 30, MaxMsgs: 50_000_000, MaxConsumers: 32, MaxMsgSize: 1 << 20,
		Duplicates: 2 * time.Minute, Discard: jetstream.DiscardNew}); err != nil {
		return fmt.Errorf("the plain server's stream: %w", err)
	}
	body := make([]byte, 256)
	slot := o.eventsDuration / time.Duration(o.peerRounds)
	nl := &loader{}
	pub := []contender{
		{name: "bulkhead", pids: []int{o.serverPID}, l: nl, op: bulkhead.publish(body)},
		{name: "raw", pids: []int{o.natsRawPID}, l: nl, op: raw.publish(body)},
	}
	if err := interleave(ctx, out, "events_pub_", o.conns, o.peerRounds, o.warmup, slot, pub); err != nil {
		return err
	}
	sub := []contender{
		{name: "bulkhead", pids: []int{o.serverPID}, l: nl, op: bulkhead.consume},
		{name: "raw", pids: []int{o.natsRawPID}, l: nl, op: raw.consume},
	}
	return interleave(ctx, out, "events_sub_", o.conns, o.peerRounds, o.warmup, slot, sub)
}

// validateEvents checks the event comparison's flags.
func (o options) validateEvents() error {
	if o.eventsDuration == 0 {
		return nil
	}
	switch {
	case o.natsURL == "" || o.natsRawURL == "" || o.natsRawPID <= 0 || o.serverPID <= 0:
		return errors.New("-events-duration needs -nats-url, -nats-raw-url, -nats-raw-pid and -server-pid")
	case !strings.Contains(o.natsRawUser, ":"):
		return errors.New("-nats-raw-user is user:password")
	case o.peerRounds < 1 || o.peerRounds > 100:
		return errors.New("-peer-rounds is 1 to 100")
	}
	return nil
}
