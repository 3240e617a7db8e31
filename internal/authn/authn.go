// Package authn authenticates API callers. A verified credential yields one
// of two distinct principals carried in the request context: an Operator
// (the platform's administrators and services) or a tenant.Context (a caller
// acting for exactly one tenant). Handlers ask for the one they accept.
//
// This version knows operator tokens: random bearer secrets stored only as
// SHA-256 hashes and compared in constant time. Later capabilities add
// verifiers for tenant tokens through the Verifier interface.
package authn

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the migrations of the operator token store.
func Migrations() storage.Component {
	c := storage.Embedded("authn", migrations)
	c.RowSecurity = map[string]storage.Rows{"admin_tokens": storage.PlatformRows()}
	return c
}

// Operator is a platform operator principal: an admin token (automation)
// or a person of the operator directory signed in to the console.
type Operator struct {
	TokenID string // id of the admin token used, e.g. "adm_…"
	Account string // the operator account, e.g. "opr_…" (then TokenID is "")
}

// Name returns the principal name used in audit events:
// "operator:adm_…" or "operator:opr_…".
func (o Operator) Name() string {
	if o.Account != "" {
		return "operator:" + o.Account
	}
	return "operator:" + o.TokenID
}

type operatorKey struct{}

// WithOperator returns ctx carrying the operator principal.
func WithOperator(ctx context.Context, o Operator) context.Context {
	return context.WithValue(ctx, operatorKey{}, o)
}

// OperatorFrom returns the operator principal carried by ctx, if any.
func OperatorFrom(ctx context.Context) (Operator, bool) {
	o, ok := ctx.Value(operatorKey{}).(Operator)
	return o, ok
}

// PrincipalName names whoever ctx's credential belongs to, for audit and
// logs: "user:<id> via client:<id>" for a delegated credential.
func PrincipalName(ctx context.Context) string {
	if o, ok := OperatorFrom(ctx); ok {
		return o.Name()
	}
	if t, ok := tenant.FromContext(ctx); ok {
		if t.Actor != "" {
			return t.Principal + " via " + t.Actor
		}
		return t.Principal
	}
	return "anonymous"
}

// Verifier turns a bearer token into a context carrying a principal. It
// returns ErrUnknownToken if the token is not of its kind, so the next
// verifier can try.
type Verifier interface {
	Verify(ctx context.Context, token string) (context.Context, error)
}

// ErrUnknownToken is returned by a Verifier for a token it does not recognise.
var ErrUnknownToken = errs.E(errs.Unauthenticated, "invalid_token", "the bearer token is not valid")

// Authenticate tries each verifier in turn.
func Authenticate(ctx context.Context, token string, vs ...Verifier) (context.Context, error) {
	if token == "" {
		return nil, errs.E(errs.Unauthenticated, "missing_token", "send a bearer token in the Authorization header")
	}
	for _, v := range vs {
		out, err := v.Verify(ctx, token)
		if err == nil {
			return out, nil
		}
		if err != ErrUnknownToken {
			return nil, err
		}
	}
	return nil, ErrUnknownToken
}

// AdminTokens verifies operator tokens against their stored hashes.
type AdminTokens struct {
	db    *storage.DB
	clock clock.Clock

	mu     sync.RWMutex
	hashes []adminHash // loaded at Load; admin tokens are few
}

type adminHash struct {
	id   string
	hash [32]byte
}

// AdminTokenPrefix starts every admin token.
const AdminTokenPrefix = "bha"

// NewAdminTokens returns the admin token store of db.
func NewAdminTokens(db *storage.DB, clk clock.Clock) *AdminTokens {
	if clk == nil {
		clk = clock.System{}
	}
	return &AdminTokens{db: db, clock: clk}
}

// Bootstrap makes sure an admin token exists. If none does, it stores
// preset (when non-empty) or a new random token and returns it; the caller
// shows it once. If one exists it returns "". Concurrent first starts of
// several nodes create only one.
func (a *AdminTokens) Bootstrap(ctx context.Context, preset string) (string, error) {
	token := preset
	if token == "" {
		token = ids.Secret(AdminTokenPrefix)
	} else if len(token) < 24 {
		return "", fmt.Errorf("authn: the preset admin token must be at least 24 characters")
	}
	h := sha256.Sum256([]byte(token))
	created := false
	err := a.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if tx.Dialect() == storage.Postgres {
			if _, err := tx.Exec(ctx, `LOCK TABLE admin_tokens IN EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM admin_tokens`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO admin_tokens (id, hash, created_at) VALUES (?, ?, ?)`,
			ids.New("adm"), hex.EncodeToString(h[:]), a.clock.Now().UnixMicro())
		created = err == nil
		return err
	})
	if err != nil {
		return "", fmt.Errorf("authn: bootstrap admin token: %w", err)
	}
	if err := a.Load(ctx); err != nil {
		return "", err
	}
	if !created {
		return "", nil
	}
	return token, nil
}

// Load reads the stored admin token hashes.
func (a *AdminTokens) Load(ctx context.Context) error {
	var hs []adminHash
	err := a.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, hash FROM admin_tokens`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, hx string
			if err := rows.Scan(&id, &hx); err != nil {
				return err
			}
			var h adminHash
			h.id = id
			if b, err := hex.DecodeString(hx); err == nil && len(b) == 32 {
				copy(h.hash[:], b)
				hs = append(hs, h)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("authn: load admin tokens: %w", err)
	}
	a.mu.Lock()
	a.hashes = hs
	a.mu.Unlock()
	return nil
}

// Verify implements Verifier for admin tokens.
func (a *AdminTokens) Verify(ctx context.Context, token string) (context.Context, error) {
	h := sha256.Sum256([]byte(token))
	a.mu.RLock()
	defer a.mu.RUnlock()
	match := ""
	for _, s := range a.hashes {
		// Compare against every stored hash so the time taken does not say which matched.
		if subtle.ConstantTimeCompare(h[:], s.hash[:]) == 1 {
			match = s.id
		}
	}
	if match == "" {
		return nil, ErrUnknownToken
	}
	return WithOperator(ctx, Operator{TokenID: match}), nil
}
