// Package mail sends Bulkhead's few emails (password reset links) through
// the operator's SMTP server, with net/smtp: STARTTLS whenever the server
// offers it and always unless the server is on loopback, and
// authentication only over TLS. Messages are queued and sent by Run, so
// a request's answer does not wait for (nor tell, by its timing,
// whether there was) an email.
package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/netguard"
)

// Config is the SMTP server's settings.
type Config struct {
	Addr     string // host:port
	From     string // the sender's address
	Username string // optional: PLAIN authentication, over TLS only
	Password string
	// TLS configures STARTTLS (nil: the host's name, the system's roots).
	TLS *tls.Config
	// Timeout bounds each message's delivery (default 30s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Message is one email in plain text.
type Message struct {
	To      string
	Subject string
	Body    string
}

// Sender queues messages and sends them.
type Sender struct {
	cfg   Config
	host  string
	queue chan Message
}

// QueueSize bounds the messages waiting; past it Enqueue refuses.
const QueueSize = 256

// New checks cfg and returns a sender.
func New(cfg Config) (*Sender, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mail: SMTP address %q: %w", cfg.Addr, err)
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("mail: sender %q: %w", cfg.From, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sender{cfg: cfg, host: host, queue: make(chan Message, QueueSize)}, nil
}

// ErrQueueFull is Enqueue's answer when QueueSize messages wait.
var ErrQueueFull = errors.New("mail: the queue is full")

// Enqueue queues m for Run to send.
func (s *Sender) Enqueue(m Message) error {
	if _, err := mail.ParseAddress(m.To); err != nil || strings.ContainsAny(m.To+m.Subject, "\r\n") {
		return fmt.Errorf("mail: bad recipient or subject")
	}
	select {
	case s.queue <- m:
		return nil
	default:
		return ErrQueueFull
	}
}

// Run sends queued messages until ctx ends. A failed delivery is logged
// (without the message's body: it holds a secret link) and dropped.
func (s *Sender) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-s.queue:
			sctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
			if err := s.Send(sctx, m); err != nil && ctx.Err() == nil {
				s.cfg.Logger.WarnContext(ctx, "mail: delivery failed", "err", err, "subject", m.Subject)
			}
			cancel()
		}
	}
}

// Send delivers m now.
func (s *Sender) Send(ctx context.Context, m Message) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("mail: dial: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("mail: hello: %w", err)
	}
	defer c.Close()
	loopback := netguard.Loopback(s.host)
	if ok, _ := c.Extension("STARTTLS"); ok {
		tc := s.cfg.TLS
		if tc == nil {
			tc = &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}
		}
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("mail: STARTTLS: %w", err)
		}
	} else if !loopback {
		return errors.New("mail: the SMTP server does not offer STARTTLS; a reset link is not sent in clear text")
	}
	if s.cfg.Username != "" {
		// net/smtp's PLAIN refuses to send the password without TLS
		// (except to localhost).
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.host)); err != nil {
			return fmt.Errorf("mail: authenticate: %w", err)
		}
	}
	if err := c.Mail(s.cfg.From); err != nil {
		return fmt.Errorf("mail: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return fmt.Errorf("mail: RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("mail: DATA: %w", err)
	}
	msg := "From: " + s.cfg.From + "\r\nTo: " + m.To + "\r\nSubject: " + mime.QEncoding.Encode("utf-8", m.Subject) +
		"\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\n" + strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	if _, err := w.Write([]byte(msg)); err != nil {
		return fmt.Errorf("mail: write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("mail: send: %w", err)
	}
	return c.Quit()
}
