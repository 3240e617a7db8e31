package events

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// DeleteOperatorStream deletes the operator's stream, as a new cluster
// would not have it.
func DeleteOperatorStream(ctx context.Context, s *Server) error {
	return s.streams.DeleteStream(ctx, OperatorStream)
}

// StreamExists reports whether tenant tid's stream exists.
func StreamExists(ctx context.Context, s *Server, tid string) (bool, error) {
	p, err := s.placeFor(ctx, tid)
	if err != nil {
		return false, err
	}
	_, err = p.js.Stream(ctx, StreamName(tid))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil
	}
	return err == nil, err
}

// SharedStream makes tenant tid's stream in the shared account TENANTS, as
// an earlier version did, and returns Bulkhead's JetStream there.
func SharedStream(ctx context.Context, s *Server, tid string) (jetstream.JetStream, error) {
	p := &place{account: tenantsAccount, nc: s.streamsConn, js: s.streams}
	return s.streams, s.ensureStream(ctx, p, tid, tenants.Tier{})
}

// AdoptSharedStreams is what Start does.
func AdoptSharedStreams(ctx context.Context, s *Server) error { return s.adoptSharedStreams(ctx) }

// EvictAccount drops Bulkhead's connection to tenant tid's account from
// its cache, as the least recently used of more than maxAccountConns
// would be (it is closed AccountConnGrace later).
func EvictAccount(s *Server, tid string) { s.accounts.Evict(tid) }

// AccountConnGrace is how long an evicted account connection stays open.
const AccountConnGrace = 30 * time.Second

// OperatorStreamMsgs is how many messages the operator's stream holds.
func OperatorStreamMsgs(ctx context.Context, s *Server) (uint64, error) {
	st, err := s.streams.Stream(ctx, OperatorStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// SlotOf is tenant tid's account on an external server, given to it now
// if it has none (what a first connection does).
func SlotOf(ctx context.Context, s *Server, tid string) (string, error) { return s.slotOf(ctx, tid) }
