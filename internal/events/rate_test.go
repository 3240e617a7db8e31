package events_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

// TestPublishRate: a tenant whose connections send more messages than
// its tier's stream_publish_rps (with its burst) has them closed and is
// refused for a while; its neighbour, sending within its own budget on
// the same server, keeps its connection.
func TestPublishRate(t *testing.T) { eachMode(t, testPublishRate) }

func testPublishRate(t *testing.T, m mode) {
	tiers := filepath.Join(t.TempDir(), "tiers.json")
	if err := os.WriteFile(tiers, []byte(`{"tiers":[{"name":"basic","isolation":"pool","rate_limit_rps":1000,"rate_limit_burst":1000,`+
		`"stream_publish_rps":100,"stream_publish_burst":200},{"name":"premium","isolation":"silo"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorldIn(t, m, apitest.Options{TiersFile: tiers}, "loud-co", "quiet-co")
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	tokLoud, _ := w.token(t, "loud-co", both...)
	tokQuiet, _ := w.token(t, "quiet-co", both...)
	url := w.env.Events.ClientURL()
	loud, err := connect(t, url, tokLoud, "loud-co")
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := connect(t, url, tokQuiet, "quiet-co")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the neighbour: 20 messages a second
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				quiet.Publish("t.quiet-co.orders", []byte("q"))
			}
		}
	}()
	go func() { // the flood, until its connection is closed
		for deadline := time.Now().Add(30 * time.Second); !loud.IsClosed() && time.Now().Before(deadline); {
			loud.Publish("t.loud-co.orders", []byte("flood"))
		}
	}()
	runtest.Eventually(t, "the flooding tenant's connection to close", func() bool { return loud.IsClosed() })
	if _, err := connect(t, url, tokLoud, "loud-co"); err == nil {
		t.Error("the flooding tenant connected again at once")
	}
	time.Sleep(1500 * time.Millisecond) // a charge or two later
	if quiet.IsClosed() {
		t.Error("the neighbour's connection closed with the flooder's")
	}
	runtest.Eventually(t, "the flooding tenant to be let in again after the cooldown", func() bool {
		_, err := connect(t, url, tokLoud, "loud-co")
		return err == nil
	})
}
