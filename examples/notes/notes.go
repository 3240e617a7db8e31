package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/envelope"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
)

// Limits of the API.
const (
	maxBody     = 16 << 10 // a note's body, in bytes
	maxRequest  = 64 << 10 // a request's body, JSON and all
	maxListed   = 100      // notes a list returns, the newest
	notePrefix  = "note"   // note ids are note_<26 base32 characters>
	notesTable  = "notes"  // the table and column a body's encryption is bound to
	bodyColumn  = "body"
	problemType = "urn:notes:problem:"
)

// config is what the service needs to run.
type config struct {
	Listen   string
	Bulkhead string // Bulkhead's API
	Issuer   string // Bulkhead's public URL, if not Bulkhead
	Cluster  string // the application cluster's name in Bulkhead
	DSN      string // the serving role's DSN on the cluster's shared database
	// HTTPClient calls Bulkhead (default http.DefaultClient).
	HTTPClient *http.Client
}

// server is the notes service.
type server struct {
	db        *tenantdb.DB
	validator *auth.Validator
	bulkhead  string
	http      *http.Client
	keys      *envelope.Cache // data keys, partitioned by caller (see caller.crypter)
	log       *slog.Logger
}

func newServer(cfg config, log *slog.Logger) (*server, error) {
	if cfg.Issuer == "" {
		cfg.Issuer = cfg.Bulkhead
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	// The tokens this service takes are those Bulkhead's API takes (their
	// audience is the platform issuer URL): it passes them on to Bulkhead.
	v, err := auth.NewValidator(auth.Config{Issuer: cfg.Issuer, Audience: cfg.Issuer, HTTPClient: cfg.HTTPClient, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("token validator: %w", err)
	}
	db, err := tenantdb.Open(tenantdb.Config{Clusters: map[string]string{cfg.Cluster: cfg.DSN},
		Resolver: callerResolver{}, Logger: log})
	if err != nil {
		return nil, err
	}
	return &server{db: db, validator: v, bulkhead: strings.TrimRight(cfg.Bulkhead, "/"), http: cfg.HTTPClient,
		keys: envelope.NewCache(envelope.CacheConfig{}), log: log}, nil
}

// Close closes the database pools.
func (s *server) Close() { s.db.Close() }

// Handler is the service's HTTP API, behind sdk/auth's middleware.
func (s *server) Handler() http.Handler { return s.validator.Middleware(s.mux()) }

// route is one operation of the API: its ServeMux pattern, its
// operationId in openapi.json, and its handler.
type route struct {
	pattern, operationID string
	h                    func(context.Context, *caller, *http.Request) (int, any, error)
}

// routes are the operations the service serves, which openapi.json
// documents one for one (openapi_test.go holds them to it).
func (s *server) routes() []route {
	return []route{
		{"POST /notes", "createNote", s.create},
		{"GET /notes", "listNotes", s.list},
		{"GET /notes/{id}", "getNote", s.get},
		{"DELETE /notes/{id}", "deleteNote", s.delete},
	}
}

// mux routes the requests, without the middleware.
func (s *server) mux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.pattern, s.handle(rt.h))
	}
	return mux
}

// note is a note as the API shows it.
type note struct {
	ID        string    `json:"id"`
	Author    string    `json:"author"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
}

// row is a note as the database holds it: the body sealed.
type row struct {
	id, author string
	body       []byte
	createdAt  time.Time
}

// problem is an error answer with a stable code.
type problem struct {
	status int
	code   string
	detail string
}

func (p *problem) Error() string { return p.code + ": " + p.detail }

// errNotFound is the one answer for a note that does not exist, that is
// another tenant's (which this tenant's transaction cannot see), or whose
// id is malformed: byte for byte the same, so it reveals nothing.
var errNotFound = &problem{http.StatusNotFound, "note_not_found", "no such note"}

// handle runs h for the request's caller and writes its answer (status,
// JSON) or its error as problem+json.
func (s *server) handle(h func(context.Context, *caller, *http.Request) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.callerOf(r)
		var (
			status int
			out    any
		)
		if err == nil {
			status, out, err = h(withCaller(r.Context(), c), c, r)
		}
		if err != nil {
			s.writeError(w, r, c, err)
			return
		}
		if out == nil {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(out)
	}
}

func (s *server) writeError(w http.ResponseWriter, r *http.Request, c *caller, err error) {
	var p *problem
	if !errors.As(err, &p) {
		attrs := []any{"method", r.Method, "path", r.URL.Path, "err", err}
		if c != nil {
			attrs = append(attrs, "tenant_id", c.claims.TenantID)
		}
		// Errors carry ids and codes, never a token or a body.
		s.log.ErrorContext(r.Context(), "notes: request failed", attrs...)
		p = bulkheadProblem(err)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.status)
	json.NewEncoder(w).Encode(api.Problem{Type: problemType + p.code, Title: http.StatusText(p.status),
		Status: p.status, Detail: p.detail, Code: p.code})
}

func (s *server) create(ctx context.Context, c *caller, r *http.Request) (int, any, error) {
	var in struct {
		Body string `json:"body"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || dec.More() {
		return 0, nil, &problem{http.StatusBadRequest, "invalid_json", `the body must be one JSON object {"body": "…"}`}
	}
	if in.Body == "" || len(in.Body) > maxBody || !utf8.ValidString(in.Body) {
		return 0, nil, &problem{http.StatusBadRequest, "invalid_body", fmt.Sprintf("body must be 1 to %d bytes of UTF-8", maxBody)}
	}
	if err := s.authorize(ctx, c, "create", notebook()); err != nil {
		return 0, nil, err
	}
	n := note{ID: ids.New(notePrefix), Author: c.principal(), Body: in.Body}
	sealed, err := s.crypter(c).EncryptField(ctx, c.keyID(), c.field(n.ID), []byte(in.Body))
	if err != nil {
		return 0, nil, fmt.Errorf("encrypt: %w", err)
	}
	err = s.db.Tx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO notes (id, author, body) VALUES ($1, $2, $3) RETURNING created_at`,
			n.ID, n.Author, sealed).Scan(&n.CreatedAt)
	})
	if err != nil {
		return 0, nil, err
	}
	s.log.InfoContext(ctx, "notes: created", "tenant_id", c.claims.TenantID, "note", n.ID, "author", n.Author)
	return http.StatusCreated, n, nil
}

func (s *server) list(ctx context.Context, c *caller, r *http.Request) (int, any, error) {
	if err := s.authorize(ctx, c, "list", notebook()); err != nil {
		return 0, nil, err
	}
	var rows []row
	err := s.db.ReadTx(ctx, func(tx pgx.Tx) error {
		rs, err := tx.Query(ctx, `SELECT id, author, body, created_at FROM notes ORDER BY created_at DESC, id LIMIT $1`, maxListed)
		if err != nil {
			return err
		}
		rows, err = pgx.CollectRows(rs, func(r pgx.CollectableRow) (row, error) {
			var n row
			err := r.Scan(&n.id, &n.author, &n.body, &n.createdAt)
			return n, err
		})
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	// Decrypted outside the transaction: no connection is held while
	// Bulkhead's KMS unwraps a data key.
	out := struct {
		Items []note `json:"items"`
	}{Items: make([]note, 0, len(rows))}
	for _, n := range rows {
		d, err := s.open(ctx, c, n)
		if err != nil {
			return 0, nil, err
		}
		out.Items = append(out.Items, d)
	}
	return http.StatusOK, out, nil
}

func (s *server) get(ctx context.Context, c *caller, r *http.Request) (int, any, error) {
	n, err := s.loadFor(ctx, c, "read", r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	d, err := s.open(ctx, c, n)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d, nil
}

func (s *server) delete(ctx context.Context, c *caller, r *http.Request) (int, any, error) {
	n, err := s.loadFor(ctx, c, "delete", r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	// The decision was about this author: delete the note only if it still
	// has it (the author never changes, but the check costs nothing and
	// spares holding a row lock across the call to Bulkhead).
	var deleted bool
	err = s.db.Tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM notes WHERE id = $1 AND author = $2`, n.id, n.author)
		deleted = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if !deleted {
		return 0, nil, errNotFound
	}
	s.log.InfoContext(ctx, "notes: deleted", "tenant_id", c.claims.TenantID, "note", n.id, "by", c.principal())
	return http.StatusNoContent, nil, nil
}

// loadFor reads note id in the caller's tenant's transaction (a note of
// another tenant is not there to be read) and asks whether the caller
// may do action on it.
func (s *server) loadFor(ctx context.Context, c *caller, action, id string) (row, error) {
	if !ids.Valid(id, notePrefix) {
		return row{}, errNotFound
	}
	n := row{id: id}
	err := s.db.ReadTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT author, body, created_at FROM notes WHERE id = $1`, id).Scan(&n.author, &n.body, &n.createdAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return row{}, errNotFound
	}
	if err != nil {
		return row{}, err
	}
	return n, s.authorize(ctx, c, action, noteEntity(n))
}

// open decrypts a note's body. A body that does not decrypt for this row
// (copied from another row or tenant, or altered) is an error, never
// shown: the caller gets a 500 and the log says which note.
func (s *server) open(ctx context.Context, c *caller, n row) (note, error) {
	body, err := s.crypter(c).DecryptField(ctx, c.field(n.id), n.body)
	if err != nil {
		return note{}, fmt.Errorf("note %s: decrypt its body: %w", n.id, err)
	}
	return note{ID: n.id, Author: n.author, Body: string(body), CreatedAt: n.createdAt}, nil
}
