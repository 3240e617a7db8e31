package gateway

import (
	"context"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/httpx"
)

// Server limits of the gateway's listeners.
const (
	// ReadHeaderTimeout bounds a client's time to send its headers
	// (slowloris).
	ReadHeaderTimeout = 10 * time.Second
	// MaxHeaderBytes bounds a request's headers; past it the client gets
	// 431.
	MaxHeaderBytes = 64 << 10
)

// NewServer returns the HTTP server of a gateway listener serving h. It has
// no write timeout: answers stream for as long as the application sends
// them; each route bounds the wait for the application's headers. It
// answers the requests a NewListener refused.
func NewServer(h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           framingHandler{h},
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errorLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if cc, ok := c.(*checkedConn); ok {
				return context.WithValue(ctx, connKey{}, cc)
			}
			return ctx
		},
	}
}

type connKey struct{}

// framingHandler answers the requests a NewListener refused, and closes
// the connection after an upgrade the answer does not accept: the
// listener stops checking after an upgrade request (what follows a 101 is
// another protocol), so the connection must not carry HTTP after any other
// answer.
type framingHandler struct{ h http.Handler }

func (f framingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cc, _ := r.Context().Value(connKey{}).(*checkedConn)
	if cc == nil {
		f.h.ServeHTTP(w, r)
		return
	}
	if cc.tls != nil && r.TLS == nil {
		// HTTP/1.x over TLS (NewTLSListener): net/http saw the checked
		// connection, not the *tls.Conn under it.
		r = r.WithContext(r.Context())
		r.TLS = cc.tls
	}
	if reason := cc.refusal(r.Header.Get(refusedHeader)); reason != "" {
		w.Header().Set("Connection", "close")
		httpx.WriteProblem(w, httpx.ProblemFor(errs.E(errs.Invalid, "ambiguous_framing",
			"the request is refused: it carries %s, which intermediaries may read differently", reason)))
		return
	}
	if r.Header.Get("Upgrade") != "" || r.Method == http.MethodConnect {
		w = &upgradeWriter{ResponseWriter: w}
	}
	f.h.ServeHTTP(w, r)
}

// upgradeWriter closes the connection after any final answer but 101.
type upgradeWriter struct {
	http.ResponseWriter
	wrote bool
}

func (u *upgradeWriter) WriteHeader(code int) {
	if code >= 200 && !u.wrote {
		u.wrote = true
		u.Header().Set("Connection", "close")
	}
	u.ResponseWriter.WriteHeader(code)
}

func (u *upgradeWriter) Write(b []byte) (int, error) {
	if !u.wrote {
		u.WriteHeader(http.StatusOK)
	}
	return u.ResponseWriter.Write(b)
}

func (u *upgradeWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }
