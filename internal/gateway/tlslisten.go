package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// NewTLSListener returns ln serving TLS with cfg, with the framing check
// of NewListener on every HTTP/1.x connection: a front proxy that speaks
// HTTP/1.1 over TLS to the gateway may frame a request otherwise than net/http
// does, as over plain HTTP. A connection that negotiates h2 (ALPN) is
// handed over as its *tls.Conn, for net/http's HTTP/2 server, whose
// framing is binary and its own. The check needs the handshake done
// before net/http sees the connection, so handshakes run here, each on
// its own goroutine within timeout (a client that never finishes one
// does not hold the others up), and Accept returns connections as their
// handshakes end. Serve it with a server from NewServer whose TLSConfig is
// cfg; the requests of a checked connection still carry their TLS state
// (http.Request.TLS). Close stops the handshakes in progress and waits
// for their goroutines.
func NewTLSListener(ln net.Listener, cfg *tls.Config, maxHeaderBytes int, timeout time.Duration) net.Listener {
	// A copy: net/http's HTTP/2 setup edits the server's own as Serve starts.
	l := &tlsListener{Listener: ln, cfg: cfg.Clone(), max: maxHeaderBytes + 8192, timeout: timeout,
		ready: make(chan net.Conn), errs: make(chan error)}
	l.ctx, l.stop = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

type tlsListener struct {
	net.Listener
	cfg     *tls.Config
	max     int
	timeout time.Duration

	ready chan net.Conn // connections whose handshake is done
	errs  chan error    // the underlying listener's errors
	ctx   context.Context
	stop  context.CancelFunc // by Close: ends the handshakes
	once  sync.Once
	wg    sync.WaitGroup // acceptLoop and the handshakes
}

// Accept returns the next connection whose handshake succeeded.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close closes the listener, ends the handshakes in progress and waits
// for them.
func (l *tlsListener) Close() error {
	var err error
	l.once.Do(func() {
		l.stop()
		err = l.Listener.Close()
		l.wg.Wait()
	})
	return err
}

// acceptLoop accepts connections and starts their handshakes. Errors go
// to Accept (net/http backs off on temporary ones); a closed listener
// ends the loop.
func (l *tlsListener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.ctx.Done():
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l.wg.Add(1)
		go l.handshake(c)
	}
}

// handshake runs c's TLS handshake and hands the connection to Accept:
// checked unless it speaks h2.
func (l *tlsListener) handshake(c net.Conn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
	defer cancel()
	tc := tls.Server(c, l.cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return
	}
	var out net.Conn = tc
	if state := tc.ConnectionState(); state.NegotiatedProtocol != "h2" {
		out = &checkedConn{Conn: tc, max: l.max, tls: &state}
	}
	select {
	case l.ready <- out:
	case <-l.ctx.Done():
		out.Close()
	}
}
