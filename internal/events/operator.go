package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
)

// The operator's stream: Bulkhead's own lifecycle events (package outbox),
// one message per event on bulkhead.events.<type>, its Nats-Msg-Id the
// event id. It lives in the tenants' account beside their streams, made
// and written by Bulkhead's own connection; a tenant's user may reach none
// of it (its permissions name only t.<tenant>.>, its inbox and its own
// stream's API), and an operator's user may read it and nothing else.
const (
	OperatorStream  = "BULKHEAD"
	OperatorSubject = "bulkhead.events"
	// OperatorInbox is the inbox prefix an operator's connection must use
	// (nats.CustomInboxPrefix): no tenant id has capitals, so no tenant's
	// inbox (_INBOX_<tenant>) is it.
	OperatorInbox = "_INBOX_OPERATOR"
	// operatorDedup is the stream's de-duplication window: a relay that
	// crashed between publishing an event and marking it published
	// publishes it again at its next start, and the stream drops the copy
	// if that start comes within the window.
	operatorDedup = 24 * time.Hour
	// operatorUserTTL bounds an operator's NATS user: it reconnects with
	// its token after that, so a revoked admin token loses the stream
	// within it.
	operatorUserTTL = time.Hour
)

// ensureOperatorStream makes (or keeps) the operator's stream.
func (s *Server) ensureOperatorStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := s.streams.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: OperatorStream, Subjects: []string{OperatorSubject + ".>"}, Storage: jetstream.FileStorage,
		Duplicates: operatorDedup, MaxAge: 30 * 24 * time.Hour, MaxBytes: 1 << 30, Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("events: the operator's stream: %w", err)
	}
	return nil
}

// PublishEvent puts one of Bulkhead's own events on the operator's stream
// as bulkhead.events.<typ>, with id as its Nats-Msg-Id: published again
// within the window, it is dropped as a duplicate. A server that lost the
// stream (a new cluster) gets it made again, and the event published.
func (s *Server) PublishEvent(ctx context.Context, typ, id string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	publish := func() error {
		_, err := s.streams.Publish(ctx, OperatorSubject+"."+typ, body, jetstream.WithMsgID(id),
			jetstream.WithExpectStream(OperatorStream))
		return err
	}
	err := publish()
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) {
		if err = s.ensureOperatorStream(ctx); err == nil {
			err = publish()
		}
	}
	if err != nil {
		return fmt.Errorf("events: publish %s: %w", typ, err)
	}
	return nil
}

// operatorUser makes the user of a connection whose token is an
// operator's (Config.Operators): it may subscribe to the operator's
// events and read the operator's stream through consumers, and nothing
// else: no publish under bulkhead.>, no stream create, update, delete or
// purge, no tenant's subject or stream. ok is false for any other token.
func (s *Server) operatorUser(ctx context.Context, req *jwt.AuthorizationRequestClaims, token string) (string, bool) {
	if s.cfg.Operators == nil {
		return "", false
	}
	vctx, err := s.cfg.Operators.Verify(ctx, token)
	if err != nil {
		return "", false
	}
	op, ok := authn.OperatorFrom(vctx)
	if !ok {
		return "", false
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = op.Name()
	uc.Audience = tenantsAccount
	uc.Expires = time.Now().Add(operatorUserTTL).Unix()
	inbox := OperatorInbox + ".>"
	uc.Permissions.Sub.Allow.Add(OperatorSubject+".>", inbox)
	st := OperatorStream
	uc.Permissions.Pub.Allow.Add(inbox,
		"$JS.API.STREAM.INFO."+st,
		"$JS.API.STREAM.MSG.GET."+st,
		"$JS.API.DIRECT.GET."+st, "$JS.API.DIRECT.GET."+st+".>",
		"$JS.API.CONSUMER.*."+st,
		"$JS.API.CONSUMER.*."+st+".>",
		"$JS.API.CONSUMER.*.*."+st+".>",
		"$JS.ACK."+st+".>",
	)
	out, err := uc.Encode(s.issuer)
	if err != nil {
		return "", false
	}
	return out, true
}
