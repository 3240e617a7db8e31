package gateway_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

// connApp is an upstream that counts the connections it has seen and
// those still open.
type connApp struct {
	*httptest.Server
	mu           sync.Mutex
	opened, open int
}

func newConnApp(t *testing.T) *connApp {
	a := &connApp{}
	a.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	a.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		a.mu.Lock()
		defer a.mu.Unlock()
		switch s {
		case http.StateNew:
			a.opened++
			a.open++
		case http.StateClosed, http.StateHijacked:
			a.open--
		}
	}
	a.Start()
	t.Cleanup(a.Close)
	return a
}

func (a *connApp) counts() (opened, open int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.opened, a.open
}

// TestRouteChangeClosesOldTransports: when no route names an upstream any
// more (the route deleted, its upstream or its timeout changed), the
// gateway closes its idle connections to it at once instead of keeping
// its pool until the node stops; an upstream still named keeps its
// connection.
func TestRouteChangeClosesOldTransports(t *testing.T) {
	e := newEnv(t)
	oldApp, newApp := newConnApp(t), newConnApp(t)
	get := func() {
		t.Helper()
		if a := e.do(t, "GET", "acme."+appDomain, "/", "", nil); a.status != 200 {
			t.Fatalf("request: %d %s", a.status, a.body)
		}
	}
	route := func(upstream string, timeout gateway.Duration) gateway.Route {
		return gateway.Route{ID: "rt", Host: "*." + appDomain, PathPrefix: "/", Upstream: upstream, Timeout: timeout}
	}

	e.setRoutes(t, route(oldApp.URL, 0))
	get()
	if opened, open := oldApp.counts(); opened != 1 || open != 1 {
		t.Fatalf("old upstream: %d opened, %d open", opened, open)
	}
	// The same upstream under a new table: its connection is kept and reused.
	e.setRoutes(t, route(oldApp.URL, 0), gateway.Route{ID: "other", Host: "api." + appDomain + ".com", PathPrefix: "/", Upstream: newApp.URL})
	get()
	if opened, open := oldApp.counts(); opened != 1 || open != 1 {
		t.Errorf("an upstream still routed: %d opened, %d open", opened, open)
	}
	// Its route now points elsewhere: the old pool is closed.
	e.setRoutes(t, route(newApp.URL, 0))
	runtest.Eventually(t, "the old upstream's connection closed", func() bool {
		_, open := oldApp.counts()
		return open == 0
	})
	get()
	// A changed timeout is another transport: the old one is closed too.
	e.setRoutes(t, route(newApp.URL, gateway.Duration(5e9)))
	runtest.Eventually(t, "the connection of the old timeout closed", func() bool {
		_, open := newApp.counts()
		return open == 0
	})
	get()
	// The route deleted: nothing is kept.
	e.setRoutes(t)
	runtest.Eventually(t, "the deleted route's connection closed", func() bool {
		_, open := newApp.counts()
		return open == 0
	})
}
