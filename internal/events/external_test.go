package events_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/events/natstest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestExternalNodesShareCallout: two nodes on one database join one
// external NATS server. Each connection is answered by exactly one of
// them (a queue group), both take a share, and when one stops the other
// answers every connection alone.
func TestExternalNodesShareCallout(t *testing.T) {
	ns := natstest.Start(t)
	dsn := storagetest.PostgresDSN(t)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	var logs [2]runtest.Log
	node := func(i int, publicURL string) *apitest.Env {
		return apitest.New(t, dsn, apitest.Options{RootKey: key, PublicURL: publicURL, NATSURL: ns.URL(), NATSCredentials: ns.CredentialsFile,
			Logger: slog.New(slog.NewJSONHandler(&logs[i], &slog.HandlerOptions{Level: slog.LevelDebug}))})
	}
	n1 := node(0, "")
	n2 := node(1, n1.URL)
	w := &world{env: n1, nats: ns}
	w.createTenants(t, "tenant-a")
	tok, _ := w.token(t, "tenant-a", events.ScopePublish, events.ScopeSubscribe)
	answered := func(i int, what string) int {
		return strings.Count(logs[i].String(), `"msg":"events: connection `+what+`"`)
	}
	connectN := func(n int) {
		t.Helper()
		for range n {
			c, err := connect(t, ns.URL(), tok, "tenant-a")
			if err != nil {
				t.Fatalf("a tenant's connection: %v", err)
			}
			c.Close()
		}
	}

	connectN(20)
	runtest.Eventually(t, "the answers' log lines", func() bool { return answered(0, "authorized")+answered(1, "authorized") >= 20 })
	time.Sleep(100 * time.Millisecond) // a second answer to any request would be logged by now
	a1, a2 := answered(0, "authorized"), answered(1, "authorized")
	if a1+a2 != 20 || a1 == 0 || a2 == 0 {
		t.Fatalf("20 connections answered %d times by node 1 and %d by node 2; want 20 in all, shared", a1, a2)
	}
	for range 5 {
		if _, err := connect(t, ns.URL(), "forged", "tenant-a"); err == nil {
			t.Fatal("a forged token connected")
		}
	}
	runtest.Eventually(t, "the refusals' log lines", func() bool { return answered(0, "refused")+answered(1, "refused") >= 5 })
	time.Sleep(100 * time.Millisecond)
	if r := answered(0, "refused") + answered(1, "refused"); r != 5 {
		t.Fatalf("5 refused connections answered %d times", r)
	}

	// Node 2's events service stops: node 1 answers every connection.
	n2.Events.Close()
	connectN(10)
	if got := answered(0, "authorized"); got != a1+10 {
		t.Errorf("node 1 answered %d of the 10 connections after node 2 stopped", got-a1)
	}
	if got := answered(1, "authorized"); got != a2 {
		t.Errorf("node 2 answered %d connections after it stopped", got-a2)
	}
}

// TestExternalServerKilled: the external server is killed (SIGKILL) while
// a tenant publishes, and restarted. Every message JetStream acknowledged
// before the kill is in the tenant's stream after the restart; Bulkhead
// reconnects by itself, authenticates new connections again and makes
// new tenants' streams.
func TestExternalServerKilled(t *testing.T) {
	w := newWorldIn(t, external, apitest.Options{}, "tenant-a")
	ctx := t.Context()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	tok, _ := w.token(t, "tenant-a", both...)
	c, err := connect(t, w.nats.URL(), tok, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked []string
	)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			msg := fmt.Sprintf("m%d", i)
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(pctx, "t.tenant-a.orders", []byte(msg), jetstream.WithMsgID(msg))
			cancel()
			if err != nil {
				return // the server is gone
			}
			mu.Lock()
			acked = append(acked, msg)
			mu.Unlock()
		}
	}()
	runtest.Eventually(t, "messages acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	})
	w.nats.Kill()
	<-stopped
	w.nats.Restart()

	var c2 *conn
	runtest.Eventually(t, "a new connection to authenticate again", func() bool {
		c2, err = connect(t, w.nats.URL(), tok, "tenant-a")
		return err == nil
	})
	js2, err := jetstream.New(c2.Conn)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js2.Stream(ctx, events.StreamName("tenant-a"))
	if err != nil {
		t.Fatal(err)
	}
	// Read by sequence (a tenant may not make consumers on a shared
	// account).
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		if m, err := st.GetMsg(ctx, seq); err == nil {
			kept[string(m.Data)] = true
		}
	}
	for _, msg := range acked {
		if !kept[msg] {
			t.Errorf("acknowledged message %s lost in the kill", msg)
		}
	}
	t.Logf("%d messages acknowledged before the kill, %d kept", len(acked), len(kept))

	// The streams service reconnected too: a new tenant's stream is made.
	w.createTenants(t, "tenant-b")
	tokB, _ := w.token(t, "tenant-b", both...)
	b, err := connect(t, w.nats.URL(), tokB, "tenant-b")
	if err != nil {
		t.Fatalf("a new tenant after the restart: %v", err)
	}
	jsB, err := jetstream.New(b.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := jsB.Publish(ctx, "t.tenant-b.x", []byte("after")); err != nil || ack.Stream != events.StreamName("tenant-b") {
		t.Fatalf("a new tenant's publish after the restart: %+v %v", ack, err)
	}
}

// TestExternalHostile: Bulkhead's own users on the external server cannot
// be taken without their passwords, and Bulkhead will not start with a
// credentials file that others may read, or a URL that carries a password.
func TestExternalHostile(t *testing.T) {
	w := newWorldIn(t, external, apitest.Options{}, "tenant-a")
	creds := w.nats.Credentials
	tok, _ := w.token(t, "tenant-a", events.ScopePublish, events.ScopeSubscribe)
	for name, opt := range map[string]nats.Option{
		"the auth user, no password":          nats.UserInfo(creds.AuthUser, ""),
		"the auth user, a wrong password":     nats.UserInfo(creds.AuthUser, "guess"),
		"the auth user, a tenant's token":     nats.UserInfo(creds.AuthUser, tok),
		"the streams user, no password":       nats.UserInfo(creds.StreamsUser, ""),
		"the streams user, the auth user's":   nats.UserInfo(creds.StreamsUser, creds.AuthPassword),
		"the streams user, a wrong password":  nats.UserInfo(creds.StreamsUser, "guess"),
		"the system user, no password":        nats.UserInfo(creds.SysUser, ""),
		"the system user, the streams user's": nats.UserInfo(creds.SysUser, creds.StreamsPassword),
	} {
		nc, err := nats.Connect(w.nats.URL(), opt, nats.NoReconnect(), nats.Timeout(5*time.Second))
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
			continue
		}
		if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: %v; want an authorization violation", name, err)
		}
	}

	// A credentials file others may read is refused, and the error
	// quotes none of it.
	if err := os.Chmod(w.nats.CredentialsFile, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := events.ReadCredentials(w.nats.CredentialsFile)
	if err == nil || !strings.Contains(err.Error(), "readable or writable by others") {
		t.Errorf("a world-readable credentials file: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), creds.AuthPassword) {
		t.Errorf("the error quotes the password: %v", err)
	}
	for _, u := range []string{"nats://bulkhead-auth:" + creds.AuthPassword + "@127.0.0.1:4222", "nats://127.0.0.1:1,nats://u:" + creds.AuthPassword + "@h:2"} {
		_, err := events.New(events.Config{URL: u, Credentials: creds, Tokens: noTokens{}})
		if err == nil || strings.Contains(err.Error(), creds.AuthPassword) {
			t.Errorf("a URL with a password: %v", err)
		}
	}
	if _, err := events.New(events.Config{URL: w.nats.URL(), Listen: "127.0.0.1:0", Credentials: creds, Tokens: noTokens{}}); err == nil {
		t.Error("both an embedded and an external server")
	}
}

// noTokens verifies no token.
type noTokens struct{}

func (noTokens) Verify(context.Context, string) (context.Context, error) {
	return nil, errors.New("no")
}
