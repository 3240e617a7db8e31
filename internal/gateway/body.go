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
// The deadline covers the body only, and only the client's part of it: a
// timer fires when the body's time is up and, if a read of the body is
// then waiting for the client, sets the connection's read deadline to now,
// which fails that read. A read deadline is never set ahead of time: the
// server starts its background read of the connection inside the Read
// that finds the body's end, and a background read that meets a passed
// deadline cancels the request. Set ahead, a deadline that passed while
// the gateway itself was slow to read a body that had arrived in time
// (a loaded machine) cut the answer streaming back. When the timer finds
// no read waiting (the gateway is busy elsewhere), it looks again a
// grace later. A request without a body gets none.
type bodyDeadline struct {
	rc      *http.ResponseController
	grace   time.Duration
	expired atomic.Bool // a read ran past the deadline

	mu      sync.Mutex
	timer   *time.Timer
	reading bool // a read of the body is under way
	aborted bool // the connection's read deadline was set to fail it
	done    bool // lifted, or the handler has returned: no more changes
}

// limitBody sets the body deadline of r, nil when r has no body.
func (g *Gateway) limitBody(w http.ResponseWriter, r *http.Request) *bodyDeadline {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	d := &bodyDeadline{rc: http.NewResponseController(w), grace: max(g.cfg.BodyTimeout/10, 10*time.Millisecond)}
	// A writer without deadlines has no connection to hold: nothing to bound.
	if err := d.rc.SetReadDeadline(time.Time{}); err != nil {
		return nil
	}
	d.mu.Lock()
	d.timer = time.AfterFunc(g.cfg.BodyTimeout, d.check)
	d.mu.Unlock()
	r.Body = &deadlineBody{ReadCloser: r.Body, d: d}
	return d
}

// check runs when the body's time is up: it fails a read waiting for the
// client, or looks again a grace later.
func (d *bodyDeadline) check() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done || d.aborted {
		return
	}
	if d.reading {
		d.aborted = true
		d.rc.SetReadDeadline(time.Now())
		return
	}
	d.timer.Reset(d.grace)
}

// reads marks a read of the body as under way (or over).
func (d *bodyDeadline) reads(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reading = on
}

// lift removes the deadline once the body is read.
func (d *bodyDeadline) lift() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.done {
		d.done = true
		d.timer.Stop()
		if d.aborted {
			d.rc.SetReadDeadline(time.Time{})
		}
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
	d.timer.Stop()
}

// timedOut reports whether the body ran past its deadline.
func (d *bodyDeadline) timedOut() bool { return d != nil && d.expired.Load() }

type deadlineBody struct {
	io.ReadCloser
	d *bodyDeadline
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	b.d.reads(true)
	n, err := b.ReadCloser.Read(p)
	b.d.reads(false)
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
