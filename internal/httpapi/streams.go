package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// streamRoutes publish to, pull from and acknowledge a tenant's event
// stream over HTTP, for applications without a NATS client. The tenant is
// always the credential's (TenantData): a token of the tenant with the
// scope events:publish or events:subscribe, the same scopes its NATS
// connection would need.
func (s *Server) streamRoutes() []Route {
	pull := jsonCall(http.StatusOK, s.streamCaller(events.ScopeSubscribe), func(r *http.Request, tid tenant.ID, in api.StreamPull) (api.List[api.StreamMessage], error) {
		max := in.MaxMessages
		if max == 0 {
			max = 1
		}
		wait := time.Duration(in.WaitMS) * time.Millisecond
		if wait > 0 {
			// A long poll: at most maxWaitingPulls of a tenant at once
			// on a node, none of them holding an in-flight place.
			if err := s.waitingPulls.Acquire(r.Context(), string(tid), 100*time.Millisecond); err != nil {
				return api.List[api.StreamMessage]{}, &errs.Error{Kind: errs.Busy, Code: "too_many_pulls", RetryAfter: time.Second,
					Detail: fmt.Sprintf("this tenant has %d pulls waiting on this node; wait for one to end, or pull with wait_ms 0", maxWaitingPulls)}
			}
			defer s.waitingPulls.Release(string(tid))
			leaveInflight(r)
		}
		ds, err := s.Events.PullMessages(r.Context(), tid, s.callerTier(r), r.PathValue("stream"),
			events.Pull{Consumer: in.Consumer, Max: max, Wait: wait})
		out := api.List[api.StreamMessage]{Items: make([]api.StreamMessage, 0, len(ds))}
		for _, d := range ds {
			out.Items = append(out.Items, api.StreamMessage{AckID: d.AckID, Stream: d.Stream, Seq: d.Seq, Data: d.Data,
				ContentType: d.ContentType, ID: d.ID, Time: d.Time, Deliveries: d.Deliveries})
		}
		return out, err
	})
	ack := jsonCall(http.StatusOK, s.streamCaller(events.ScopeSubscribe), func(r *http.Request, tid tenant.ID, in api.StreamAck) (api.StreamAckResult, error) {
		if err := events.ParseStream(r.PathValue("stream"), true); err != nil {
			return api.StreamAckResult{}, err
		}
		res, err := s.Events.Ack(r.Context(), tid, s.callerTier(r), in.AckIDs, in.Nak)
		return api.StreamAckResult{Acked: res.Acked, Expired: res.Expired}, err
	})
	makeConsumer := jsonCall(http.StatusOK, s.streamCaller(events.ScopeSubscribe), func(r *http.Request, tid tenant.ID, _ none) (api.StreamConsumer, error) {
		stream, consumer := r.PathValue("stream"), r.PathValue("consumer")
		names, err := s.Events.MakeConsumer(r.Context(), tid, s.callerTier(r), stream, consumer)
		return api.StreamConsumer{Stream: stream, Consumer: consumer, Names: names}, err
	})
	return []Route{
		{"POST", "/v1/streams/{stream}/messages", "stream.publish", TenantData, s.publishMessage},
		{"PUT", "/v1/streams/{stream}/consumers/{consumer}", "stream.consumer_make", TenantData, makeConsumer},
		{"POST", "/v1/streams/{stream}/pull", "stream.pull", TenantData, pull},
		{"POST", "/v1/streams/{stream}/acks", "stream.ack", TenantData, ack},
	}
}

// maxWaitingPulls bounds a tenant's long-poll pulls waiting on a node.
const maxWaitingPulls = 64

// streamCaller is the caller's tenant, once its credential holds scope and
// the node serves event streams.
func (s *Server) streamCaller(scope string) func(*http.Request) (tenant.ID, error) {
	return func(r *http.Request) (tenant.ID, error) {
		tid, err := callerTenant(r, scope)
		if err != nil {
			return "", err
		}
		if s.Events == nil {
			return "", errs.E(errs.NotFound, "streams_not_enabled", "event streams are off on this server (it was started with --nats-listen off)")
		}
		return tid, nil
	}
}

// callerTier is the tier of the caller's tenant, whose limits its stream
// gets when first made.
func (s *Server) callerTier(r *http.Request) tenants.Tier {
	tc, _ := tenant.FromContext(r.Context())
	return s.Tenants.Tiers()[tc.Tier]
}

// publishMessage stores the request body as a message: its Content-Type is
// kept with it, and an Idempotency-Key de-duplicates it within the
// stream's window (201 for a new message, 200 for a duplicate).
func (s *Server) publishMessage(w http.ResponseWriter, r *http.Request) error {
	tid, err := s.streamCaller(events.ScopePublish)(r)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, events.MaxMessageSize))
	if err != nil {
		return &errs.Error{Kind: errs.TooLarge, Code: "message_too_large", Detail: "a message is at most 1 MiB"}
	}
	stream := r.PathValue("stream")
	ack, err := s.Events.Publish(r.Context(), tid, s.callerTier(r), stream,
		events.Publication{Data: data, ContentType: r.Header.Get("Content-Type"), ID: r.Header.Get("Idempotency-Key")})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if ack.Duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, api.StreamPublished{Stream: stream, Seq: ack.Seq, Duplicate: ack.Duplicate})
	return nil
}
