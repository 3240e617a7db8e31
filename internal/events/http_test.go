package events_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// post sends a raw request to the node's API and returns the status and
// the body, its request id blanked (two answers compare byte for byte).
func post(t *testing.T, url, token, path, contentType string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, requestIDs.ReplaceAllString(string(b), `"request_id":""`)
}

var requestIDs = regexp.MustCompile(`"request_id":"[^"]*"`)

func problemCode(t *testing.T, body string) string {
	t.Helper()
	var p api.Problem
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("not a problem: %s", body)
	}
	return p.Code
}

// TestHTTPStreamsIsolation: over HTTP a tenant's token reaches its own
// stream only. The same stream and consumer names in two tenants are two
// streams and two consumers; another tenant's ack id is refused exactly
// as a made-up one is; the operator, a token without the scope and a
// publish-only token are refused; names that would reach past the
// tenant's prefix are refused before NATS sees them.
func TestHTTPStreamsIsolation(t *testing.T) { eachMode(t, testHTTPStreamsIsolation) }

func testHTTPStreamsIsolation(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{}, "http-a", "http-b")
	ctx := t.Context()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	tokA, _ := w.token(t, "http-a", both...)
	tokB, _ := w.token(t, "http-b", both...)
	a, b := client.New(w.env.URL, tokA), client.New(w.env.URL, tokB)
	if _, err := a.Publish(ctx, "orders", client.Publication{Data: []byte("a's secret order")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, "orders", client.Publication{Data: []byte("b's order")}); err != nil {
		t.Fatal(err)
	}
	msA, err := a.Pull(ctx, "orders", client.StreamPull{Consumer: "shared-name", MaxMessages: 10})
	if err != nil || len(msA) != 1 || string(msA[0].Data) != "a's secret order" {
		t.Fatalf("a's pull: %+v %v", msA, err)
	}
	msB, err := b.Pull(ctx, "orders", client.StreamPull{Consumer: "shared-name", MaxMessages: 10})
	if err != nil || len(msB) != 1 || string(msB[0].Data) != "b's order" {
		t.Fatalf("b's pull, same stream and consumer names: %+v %v; want b's message only", msB, err)
	}

	// b acknowledging a's message: the same answer as a made-up id.
	ackBody := func(id string) []byte { j, _ := json.Marshal(api.StreamAck{AckIDs: []string{id}}); return j }
	stOther, other := post(t, w.env.URL, tokB, "/v1/streams/orders/acks", "application/json", ackBody(msA[0].AckID))
	forged := base64.RawURLEncoding.EncodeToString([]byte("$JS.ACK.T_http-b.x.1.1.1.1.0"))
	stForged, forgedBody := post(t, w.env.URL, tokB, "/v1/streams/orders/acks", "application/json", ackBody(forged))
	stJunk, junk := post(t, w.env.URL, tokB, "/v1/streams/orders/acks", "application/json", ackBody("not-an-ack-id"))
	if stOther != http.StatusBadRequest || other != junk || stJunk != stOther {
		t.Errorf("another tenant's ack id: %d %s\nmade-up: %d %s\nwant the same 400", stOther, other, stJunk, junk)
	}
	if stForged != http.StatusOK || !strings.Contains(forgedBody, `"acked":0`) {
		t.Errorf("an ack id of b's own stream that matches nothing: %d %s; want 200, acked 0", stForged, forgedBody)
	}
	// a's message is still in flight, unacknowledged: a acks it.
	if res, err := a.Ack(ctx, "orders", msA[0].AckID); err != nil || res.Acked != 1 {
		t.Errorf("a's own ack after b's attempt: %+v %v", res, err)
	}

	// Names reaching past the prefix, or reserved.
	for _, stream := range []string{"*", ">", "orders.*", "orders.>", "a..b", ".orders", "orders.", "p.1.x", "fifo", "fifo.a.b",
		"has%20space", strings.Repeat("x", 129), "a.b.c.d.e.f.g.h.i", "%2A"} {
		st, body := post(t, w.env.URL, tokB, "/v1/streams/"+stream+"/messages", "text/plain", []byte("x"))
		if st == http.StatusCreated || (st == http.StatusBadRequest && problemCode(t, body) != "invalid_stream") {
			t.Errorf("publish to %q: %d %s; want 400 invalid_stream (or no route)", stream, st, body)
		}
	}
	// "t.http-a.orders" is a name like another: b's own
	// t.http-b.t.http-a.orders. a's stream sees nothing from b.
	if _, err := b.Publish(ctx, "t.http-a.orders", client.Publication{Data: []byte("b into a?")}); err != nil {
		t.Fatal(err)
	}
	if ms, err := a.Pull(ctx, "orders", client.StreamPull{Consumer: "shared-name", MaxMessages: 10}); err != nil || len(ms) != 0 {
		t.Errorf("a's stream after b's attempts: %+v %v; want nothing new", ms, err)
	}

	// Who may call.
	pubOnly, _ := w.token(t, "http-a", events.ScopePublish)
	neither, _ := w.token(t, "http-a", "kms:encrypt")
	pull, _ := json.Marshal(api.StreamPull{Consumer: "x"})
	for _, c := range []struct {
		name, token, path string
		body              []byte
		status            int
		code              string
	}{
		{"operator publish", apitest.AdminToken, "/v1/streams/orders/messages", []byte("x"), 403, "tenant_credential_required"},
		{"operator pull", apitest.AdminToken, "/v1/streams/orders/pull", pull, 403, "tenant_credential_required"},
		{"publish-only pull", pubOnly, "/v1/streams/orders/pull", pull, 403, "scope_required"},
		{"no events scope publish", neither, "/v1/streams/orders/messages", []byte("x"), 403, "scope_required"},
		{"no token", "", "/v1/streams/orders/messages", []byte("x"), 401, ""},
		{"forged token", tokA[:len(tokA)-4] + "AAAA", "/v1/streams/orders/messages", []byte("x"), 401, ""},
	} {
		ct := "application/json"
		st, body := post(t, w.env.URL, c.token, c.path, ct, c.body)
		if st != c.status || (c.code != "" && problemCode(t, body) != c.code) {
			t.Errorf("%s: %d %s; want %d %s", c.name, st, body, c.status, c.code)
		}
	}
}

// TestHTTPStreamsBadInput: oversized messages, bad pulls and acks get a
// clear problem, and nothing is stored or delivered half.
func TestHTTPStreamsBadInput(t *testing.T) {
	tiers := filepath.Join(t.TempDir(), "tiers.json")
	if err := os.WriteFile(tiers, []byte(`{"tiers":[{"name":"basic","isolation":"pool","rate_limit_rps":1000,"rate_limit_burst":1000,`+
		`"stream_max_msgs":3,"stream_max_consumers":2},{"name":"premium","isolation":"silo","rate_limit_rps":1000,"rate_limit_burst":1000}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, apitest.Options{TiersFile: tiers}, "bad-a", "bad-b")
	ctx := t.Context()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	tokA, _ := w.token(t, "bad-a", both...)
	tokB, _ := w.token(t, "bad-b", both...)
	a := client.New(w.env.URL, tokA)

	st, body := post(t, w.env.URL, tokA, "/v1/streams/orders/messages", "application/octet-stream", make([]byte, events.MaxMessageSize+1))
	if st != http.StatusBadRequest || problemCode(t, body) != "message_too_large" {
		t.Errorf("a message over the limit: %d %s", st, body)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.env.URL+"/v1/streams/orders/messages", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer "+tokA)
	req.Header.Set("Idempotency-Key", strings.Repeat("k", 129))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an idempotency key over 128 characters: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, p := range []struct {
		body string
		code string
	}{
		{`{"consumer":"c","max_messages":257}`, "invalid_max_messages"},
		{`{"consumer":"c","max_messages":-1}`, "invalid_max_messages"},
		{`{"consumer":"c","wait_ms":20001}`, "invalid_wait"},
		{`{"consumer":"c","wait_ms":-5}`, "invalid_wait"},
		{`{"consumer":"a.b"}`, "invalid_consumer"},
		{`{"consumer":"*"}`, "invalid_consumer"},
		{`{"consumer":""}`, "invalid_consumer"},
		{`{"consumer":"c","extra":1}`, "unknown_field"},
	} {
		st, body := post(t, w.env.URL, tokA, "/v1/streams/orders/pull", "application/json", []byte(p.body))
		if st != http.StatusBadRequest || problemCode(t, body) != p.code {
			t.Errorf("pull %s: %d %s; want 400 %s", p.body, st, body, p.code)
		}
	}
	many := make([]string, events.MaxAcks+1)
	for i := range many {
		many[i] = "x"
	}
	for _, ids := range [][]string{nil, many} {
		j, _ := json.Marshal(api.StreamAck{AckIDs: ids})
		if st, body := post(t, w.env.URL, tokA, "/v1/streams/orders/acks", "application/json", j); st != http.StatusBadRequest || problemCode(t, body) != "invalid_ack_ids" {
			t.Errorf("%d ack ids: %d %s", len(ids), st, body)
		}
	}

	// A full stream refuses with 409; the neighbour goes on.
	for i := range 3 {
		if _, err := a.Publish(ctx, "orders", client.Publication{Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatalf("message %d within the limit: %v", i, err)
		}
	}
	_, err := a.Publish(ctx, "orders", client.Publication{Data: []byte("one too many")})
	var p *client.Error
	if !errors.As(err, &p) || p.Status != http.StatusConflict || p.Code != "stream_full" {
		t.Errorf("a fourth message into a stream of three: %v; want 409 stream_full", err)
	}
	if _, err := client.New(w.env.URL, tokB).Publish(ctx, "orders", client.Publication{Data: []byte("b")}); err != nil {
		t.Errorf("the neighbour, while a is full: %v", err)
	}
	// Consumers past the tier's limit: 409.
	for _, name := range []string{"one", "two"} {
		if _, err := a.Pull(ctx, "orders", client.StreamPull{Consumer: name}); err != nil {
			t.Fatalf("consumer %s within the limit: %v", name, err)
		}
	}
	_, err = a.Pull(ctx, "orders", client.StreamPull{Consumer: "three"})
	if !errors.As(err, &p) || p.Status != http.StatusConflict || p.Code != "consumer_limit" {
		t.Errorf("a third consumer of two allowed: %v; want 409 consumer_limit", err)
	}
}

// TestHTTPFIFO: 16 groups published over HTTP, pulled from "fifo" by 4
// workers over HTTP: each group's messages arrive in order, never two of a
// group in flight at once; a repeated id is dropped.
func TestHTTPFIFO(t *testing.T) { eachMode(t, testHTTPFIFO) }

func testHTTPFIFO(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{}, "hfifo")
	ctx := t.Context()
	tok, _ := w.token(t, "hfifo", events.ScopePublish, events.ScopeSubscribe)
	c := client.New(w.env.URL, tok)
	const groups, perGroup = 16, 6
	for i := range perGroup {
		for g := range groups {
			if _, err := c.Publish(ctx, fmt.Sprintf("fifo.user%d", g), client.Publication{Data: []byte(fmt.Sprint(i)), ID: fmt.Sprintf("g%d-%d", g, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p, err := c.Publish(ctx, "fifo.user3", client.Publication{Data: []byte("0"), ID: "g3-0"}); err != nil || !p.Duplicate {
		t.Fatalf("a repeated id: %+v %v", p, err)
	}
	var mu sync.Mutex
	got := map[string][]string{}
	inFlight := map[string]int{}
	var overlap []string
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for idle := 0; idle < 3; {
				ms, err := c.Pull(ctx, "fifo", client.StreamPull{Consumer: "workers", MaxMessages: 4, WaitMS: 100})
				if err != nil {
					t.Error(err)
					return
				}
				if len(ms) == 0 {
					idle++
					continue
				}
				idle = 0
				mu.Lock()
				for _, m := range ms {
					if inFlight[m.Stream]++; inFlight[m.Stream] > 1 {
						overlap = append(overlap, m.Stream)
					}
					got[m.Stream] = append(got[m.Stream], string(m.Data))
				}
				mu.Unlock()
				for _, m := range ms {
					// Out of flight before the ack is sent: JetStream may
					// deliver the group's next one only once it has the ack.
					mu.Lock()
					inFlight[m.Stream]--
					mu.Unlock()
					if _, err := c.Ack(ctx, "fifo", m.AckID); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if len(overlap) > 0 {
		t.Errorf("groups with two messages in flight at once: %v", overlap)
	}
	for g := range groups {
		want := make([]string, perGroup)
		for i := range want {
			want[i] = fmt.Sprint(i)
		}
		if name := fmt.Sprintf("fifo.user%d", g); strings.Join(got[name], ",") != strings.Join(want, ",") {
			t.Errorf("%s got %v; want %v", name, got[name], want)
		}
	}
}

// TestHTTPLongPoll: a pull waiting for messages holds none of its
// tenant's in-flight places (a tenant has one per two cores): the
// tenant's publish goes through while its pulls wait, and wakes one.
func TestHTTPLongPoll(t *testing.T) {
	w := newWorld(t, apitest.Options{}, "poll-co")
	ctx := t.Context()
	tok, _ := w.token(t, "poll-co", events.ScopePublish, events.ScopeSubscribe)
	c := client.New(w.env.URL, tok)
	type result struct {
		ms  []client.StreamMessage
		err error
	}
	got := make(chan result, 3)
	for range 3 {
		go func() {
			ms, err := c.Pull(ctx, "jobs", client.StreamPull{Consumer: "w", WaitMS: 5000})
			got <- result{ms, err}
		}()
	}
	time.Sleep(300 * time.Millisecond) // the pulls are waiting
	start := time.Now()
	if _, err := c.Publish(ctx, "jobs", client.Publication{Data: []byte("job")}); err != nil {
		t.Fatalf("a publish while the tenant's pulls wait: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the publish waited %v behind the tenant's pulls", d)
	}
	r := <-got
	if r.err != nil || len(r.ms) != 1 || string(r.ms[0].Data) != "job" {
		t.Errorf("a waiting pull after the publish: %+v %v", r.ms, r.err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the waiting pull took %v to see the message", d)
	}
}
