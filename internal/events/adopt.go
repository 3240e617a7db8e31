package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// adoptSharedStreams moves the tenants' streams an earlier version made
// in the shared account TENANTS into each tenant's own account (the
// embedded server: place.go), before the callout answers anyone: every
// message in order, with its headers, and every durable consumer from
// its first unacknowledged message (what was in flight comes again).
// The shared stream goes once its copy is whole; a copy cut short by a
// crash is made again from the start at the next one.
func (s *Server) adoptSharedStreams(ctx context.Context) error {
	if s.ns == nil {
		return nil
	}
	var names []string
	lister := s.streams.StreamNames(ctx)
	for name := range lister.Name() {
		if strings.HasPrefix(name, "T_") {
			names = append(names, name)
		}
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return fmt.Errorf("events: list the shared account's streams: %w", err)
	}
	for _, name := range names {
		if err := s.adoptStream(ctx, strings.TrimPrefix(name, "T_")); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) adoptStream(ctx context.Context, tid string) error {
	old, err := s.streams.Stream(ctx, StreamName(tid))
	if err != nil {
		return fmt.Errorf("events: read %s's shared stream: %w", tid, err)
	}
	info := old.CachedInfo()
	p, err := s.placeFor(ctx, tid)
	if err != nil {
		return err
	}
	cfg := info.Config
	cfg.SubjectTransform = fifoTransform(tid)
	target, err := p.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return fmt.Errorf("events: make %s's stream in its account: %w", tid, err)
	}
	if err := target.Purge(ctx); err != nil { // a copy a crash cut short
		return fmt.Errorf("events: purge %s's partial copy: %w", tid, err)
	}
	// The copied sequence of each original one, for the consumers.
	var from, to []uint64
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := old.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			return fmt.Errorf("events: read %s's message %d: %w", tid, seq, err)
		}
		ack, err := p.js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header})
		if err == nil && ack.Duplicate {
			// An id used again after the window, in the original: kept,
			// without the id that would drop it here.
			h := nats.Header{}
			for k, v := range m.Header {
				h[k] = v
			}
			h.Set("Bulkhead-Msg-Id", h.Get(jetstream.MsgIDHeader))
			h.Del(jetstream.MsgIDHeader)
			ack, err = p.js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: h})
		}
		if err != nil {
			return fmt.Errorf("events: copy %s's message %d: %w", tid, seq, err)
		}
		from, to = append(from, seq), append(to, ack.Sequence)
	}
	lister := old.ListConsumers(ctx)
	for ci := range lister.Info() {
		c := ci.Config
		if c.Durable == "" {
			continue // an ephemeral consumer ends with its client
		}
		// From the first message not yet acknowledged.
		i, _ := slices.BinarySearch(from, ci.AckFloor.Stream+1)
		c.DeliverPolicy, c.OptStartSeq, c.OptStartTime = jetstream.DeliverAllPolicy, 0, nil
		if i < len(to) && i > 0 {
			c.DeliverPolicy, c.OptStartSeq = jetstream.DeliverByStartSequencePolicy, to[i]
		} else if i >= len(to) && len(to) > 0 {
			c.DeliverPolicy = jetstream.DeliverNewPolicy
		}
		if _, err := p.js.CreateOrUpdateConsumer(ctx, StreamName(tid), c); err != nil {
			return fmt.Errorf("events: copy %s's consumer %s: %w", tid, c.Durable, err)
		}
	}
	if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return fmt.Errorf("events: list %s's consumers: %w", tid, err)
	}
	if err := s.streams.DeleteStream(ctx, StreamName(tid)); err != nil {
		return fmt.Errorf("events: remove %s's shared stream: %w", tid, err)
	}
	s.cfg.Logger.InfoContext(ctx, "events: a tenant's stream moved to its own account", "tenant_id", tid, "messages", len(to))
	return nil
}
