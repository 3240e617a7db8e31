package httpx

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// Loopback is an http.RoundTripper that serves each request with Handler
// in this process, as if it came from RemoteAddr: a part of the node that
// is a client of the node's own API or OpenID provider (the console) goes
// through the same handlers, checks and audit as a request from outside,
// without a connection, and without depending on the public URL being
// reachable from the node itself.
type Loopback struct {
	Handler    http.Handler
	RemoteAddr string // the address the handler sees (the console's user's)
	// MaxBody bounds the answer kept (default 16 MiB); a longer one is an error.
	MaxBody int64
}

// errTooLong is the error of an answer longer than MaxBody.
var errTooLong = errors.New("httpx: loopback answer too long")

// RoundTrip implements http.RoundTripper.
func (l Loopback) RoundTrip(r *http.Request) (*http.Response, error) {
	max := l.MaxBody
	if max <= 0 {
		max = 16 << 20
	}
	req := r.Clone(r.Context())
	if req.Body == nil {
		req.Body = http.NoBody
	}
	req.RemoteAddr = l.RemoteAddr
	req.RequestURI = r.URL.RequestURI()
	req.Host = r.URL.Host
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
	rec := &recorder{header: http.Header{}, max: max}
	l.Handler.ServeHTTP(rec, req)
	if r.Body != nil {
		r.Body.Close()
	}
	if rec.tooLong {
		return nil, errTooLong
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	h := rec.header.Clone()
	h.Set("Content-Length", strconv.Itoa(rec.body.Len()))
	return &http.Response{Status: strconv.Itoa(rec.status) + " " + http.StatusText(rec.status), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		ContentLength: int64(rec.body.Len()), Request: r}, nil
}

// recorder is the in-memory http.ResponseWriter of Loopback.
type recorder struct {
	header  http.Header
	status  int
	body    bytes.Buffer
	max     int64
	tooLong bool
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if int64(w.body.Len()+len(b)) > w.max {
		w.tooLong = true
		return 0, errTooLong
	}
	return w.body.Write(b)
}

// Flush lets handlers that flush (long polls) run; the answer is sent whole.
func (w *recorder) Flush() {}
