// Command notes is a small multi-tenant notes service built on Bulkhead,
// the example of the README's "Application data" part:
//
//   - sdk/auth's middleware validates each request's bearer token (issued
//     by Bulkhead) and gives the handlers its tenant;
//   - every read and write goes through sdk/tenantdb, which scopes the
//     transaction to that tenant wherever Bulkhead placed its data (pool,
//     bridge or silo): no query here names a tenant;
//   - before each action the service asks Bulkhead's Cedar authorize API
//     for a decision (policy.cedar: members create, list and read, the
//     author or an admin deletes);
//   - a note's body is stored encrypted with sdk/envelope's EncryptField,
//     under the tenant's own key and bound to {tenant, notes, id, body}.
//
// The service holds no Bulkhead credential of its own: it calls Bulkhead
// (placement, authorize, KMS) with the caller's token, so a request can
// reach only its caller's tenant's placement, policies and keys, whatever
// a bug in this code did. The caller's token therefore needs the scopes
// kms:generate-data-key and kms:decrypt.
//
//	NOTES_DSN='postgres://app:…@db/app' notes -listen 127.0.0.1:8070 \
//	  -bulkhead http://127.0.0.1:8080 -cluster app
//
// Routes (JSON; errors are RFC 9457 problem+json):
//
//	POST   /notes       {"body":"…"} → 201 the note
//	GET    /notes       → {"items":[…]}, newest first
//	GET    /notes/{id}  → the note
//	DELETE /notes/{id}  → 204
//
// openapi.json, next to this file, is the API's OpenAPI 3.0 document: the
// four operations (createNote, listNotes, getNote, deleteNote), their
// schemas and problem answers, and the bearer token they take. It is what
// `bulkhead probe` reads to test the service's tenant isolation.
//
// Its migrations, examples/notes/migrations, are applied to every
// placement by Bulkhead (`bulkhead cluster migrate`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:8070", "address to listen on")
	flag.StringVar(&cfg.Bulkhead, "bulkhead", envOr("BULKHEAD_ADDR", "http://127.0.0.1:8080"), "Bulkhead's API (default $BULKHEAD_ADDR)")
	flag.StringVar(&cfg.Issuer, "issuer", "", "Bulkhead's public URL, the tokens' issuer and audience (default -bulkhead)")
	flag.StringVar(&cfg.Cluster, "cluster", "app", "the name the application cluster is registered under in Bulkhead")
	flag.Parse()
	// The DSN holds a password: from the environment, never a flag (which
	// would land in the process list and shell history).
	cfg.DSN = os.Getenv("NOTES_DSN")
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("notes: stopped", "err", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// run serves until ctx ends.
func run(ctx context.Context, cfg config, log *slog.Logger) error {
	if cfg.DSN == "" {
		return errors.New("NOTES_DSN (the application's serving DSN on the cluster) is not set")
	}
	s, err := newServer(cfg, log)
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("notes: listening", "addr", "http://"+ln.Addr().String())
	return s.Serve(ctx, ln)
}

// Serve serves HTTP on ln and keeps the placement cache coherent until ctx
// ends, then shuts down.
func (s *server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.db.Run(ctx) }()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	shut, cancelShut := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShut()
	if serr := srv.Shutdown(shut); err == nil {
		err = serr
	}
	cancel()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
