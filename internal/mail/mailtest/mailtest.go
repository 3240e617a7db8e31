// Package mailtest runs a real SMTP server (emersion/go-smtp) on loopback
// that keeps what it receives: the sink the password reset tests send
// to. Without TLS on loopback, as the mail package allows there.
package mailtest

import (
	"bytes"
	"io"
	"mime"
	"net"
	"net/mail"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Received is a message the sink got.
type Received struct {
	From    string
	To      []string
	Subject string
	Body    string
}

// Sink is a running SMTP server.
type Sink struct {
	Addr string // host:port
	mu   sync.Mutex
	msgs []Received
	new  chan struct{}
}

// New starts a sink that stops when the test ends.
func New(tb testing.TB) *Sink {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Sink{Addr: ln.Addr().String(), new: make(chan struct{}, 100)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }))
	srv.Domain, srv.ReadTimeout, srv.WriteTimeout = "localhost", 10*time.Second, 10*time.Second
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return s
}

// Messages returns what the sink received so far.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// Wait returns the n-th message (from 1), waiting up to 10 s for it.
func (s *Sink) Wait(tb testing.TB, n int) Received {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if ms := s.Messages(); len(ms) >= n {
			return ms[n-1]
		}
		select {
		case <-s.new:
		case <-deadline:
			tb.Fatalf("the SMTP sink got %d messages, not %d", len(s.Messages()), n)
		}
	}
}

type session struct {
	sink *Sink
	cur  Received
}

func (x *session) Reset()        { x.cur = Received{} }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.cur.From = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.cur.To = append(x.cur.To, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(m.Body)
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	x.cur.Subject, x.cur.Body = subject, string(body)
	x.sink.mu.Lock()
	x.sink.msgs = append(x.sink.msgs, x.cur)
	x.sink.mu.Unlock()
	select {
	case x.sink.new <- struct{}{}:
	default:
	}
	return nil
}
