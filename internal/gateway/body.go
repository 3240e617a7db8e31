package gateway

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBodyTimeout is Config.BodyTimeout's default.
const DefaultBodyTimeout = 30 * time.Second

// bodyDeadline bounds the time a client takes to send a request body, the
// way the connections proxy does (a read deadline on the connection), so
// that a client trickling its body cannot hold a connection to the gateway
// and one to the application for as long as it likes.
//
// The deadline covers the body only: it is lifted once the body has been
// read to its end or closed, so that an answer may stream for longer (a
// read deadline left on the connection would end the request's context
// when it passed). A request without a body gets none.
type bodyDeadline struct {
	rc      *http.ResponseController
	expired atomic.Bool // a read ran past the deadline

	mu   sync.Mutex
	done bool // lifted, or the handler has returned: no more changes
}

// limitBody sets the body deadline of r, nil when r has no body.
func (g *Gateway) limitBody(w http.ResponseWriter, r *http.Request) *bodyDeadline {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	d := &bodyDeadline{rc: http.NewResponseController(w)}
	// A writer without deadlines has no connection to hold: nothing to bound.
	if err := d.rc.SetReadDeadline(time.Now().Add(g.cfg.BodyTimeout)); err != nil {
		return nil
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, d: d}
	return d
}

// lift removes the deadline once the body is read.
func (d *bodyDeadline) lift() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.done {
		d.done = true
		d.rc.SetReadDeadline(time.Time{})
	}
}

// finish stops later changes: after the handler returns, the connection
// reads its next request under its own header deadline, which a late
// lift (the transport closes the body on its own goroutine) must not
// remove.
func (d *bodyDeadline) finish() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = true
}

// timedOut reports whether the body ran past its deadline.
func (d *bodyDeadline) timedOut() bool { return d != nil && d.expired.Load() }

type deadlineBody struct {
	io.ReadCloser
	d *bodyDeadline
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.d.lift()
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.d.expired.Store(true)
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	if !b.d.expired.Load() {
		b.d.lift()
	}
	return b.ReadCloser.Close()
}
