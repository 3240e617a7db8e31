package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBodyTimeoutCountsTheClientOnly: a body that arrived in time but
// that the gateway reads late (a loaded machine) is no timeout, and
// reading it to its end must not end the request: the server's
// background read of the connection, which starts at the body's end,
// cancels the request's context if it meets a passed read deadline.
func TestBodyTimeoutCountsTheClientOnly(t *testing.T) {
	const timeout = 100 * time.Millisecond
	g := &Gateway{cfg: Config{BodyTimeout: timeout}}
	result := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := g.limitBody(w, r)
		defer d.finish()
		time.Sleep(2 * timeout) // the gateway busy elsewhere; the body waits in its buffer
		if b, err := io.ReadAll(r.Body); err != nil || string(b) != "payload" {
			result <- fmt.Errorf("reading the body: %q, %v", b, err)
			return
		}
		time.Sleep(timeout) // room for the background read to fail, if it will
		if d.timedOut() {
			result <- fmt.Errorf("a body that arrived in time was taken for a slow one")
			return
		}
		result <- r.Context().Err()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-result; err != nil {
		t.Fatalf("the request ended after its body had arrived in time: %v", err)
	}
}
