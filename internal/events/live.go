package events

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// A NATS user lasts as long as its token, but a token can stop being good
// before it expires: revoked, its client deleted, its tenant suspended or
// leaving. Tenant connections are checked again every RecheckInterval
// with the token they connected with, exactly as the API checks a
// request's, and a connection whose token is no longer good is closed:
// on the embedded server through the server itself, on an external one
// through Bulkhead's user in the system account (sysops.go). (Without
// that user, in a credentials file of an earlier version, an external
// server's connections last until their token expires.)

// DefaultRecheckInterval is how often live connections' tokens are checked.
const DefaultRecheckInterval = 5 * time.Second

// liveConn is a tenant connection the callout let in: its token, kept in
// this process's memory only (never logged), to be verified again.
type liveConn struct {
	tid   string
	tier  string
	token string
	host  string // the client's address, as the NATS server saw it
}

// MaxTenantConns bounds one tenant's connections to the embedded server:
// each holds a socket and the server's memory, and one token would
// otherwise open them until the node runs out, for every tenant. (A
// connection closed by its client counts until the next recheck forgets
// it.)
const MaxTenantConns = 1024

// connKey names a connection: its server and its client id there.
type connKey struct {
	server string
	cid    uint64
}

// liveConns are the tenant connections Bulkhead watches, by connection.
type liveConns struct {
	mu sync.Mutex
	m  map[connKey]liveConn
	n  map[string]int // tenant id → its entries in m
}

// add notes connection cid, unless its tenant has MaxTenantConns already.
func (l *liveConns) add(cid connKey, c liveConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m, l.n = map[connKey]liveConn{}, map[string]int{}
	}
	if old, ok := l.m[cid]; ok {
		l.dropLocked(cid, old)
	}
	if l.n[c.tid] >= MaxTenantConns {
		return false
	}
	l.m[cid] = c
	l.n[c.tid]++
	return true
}

func (l *liveConns) dropLocked(cid connKey, c liveConn) {
	delete(l.m, cid)
	if l.n[c.tid]--; l.n[c.tid] <= 0 {
		delete(l.n, c.tid)
	}
}

func (l *liveConns) snapshot() map[connKey]liveConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[connKey]liveConn, len(l.m))
	for k, v := range l.m {
		out[k] = v
	}
	return out
}

func (l *liveConns) drop(cid connKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.m[cid]; ok {
		l.dropLocked(cid, c)
	}
}

// recheck verifies every live tenant connection's token again and closes
// the connections whose token no longer is good; it forgets connections
// that are gone.
func (s *Server) recheck(ctx context.Context) {
	if !s.watches() {
		return
	}
	conns := s.live.snapshot()
	if len(conns) == 0 {
		return
	}
	open, err := s.openConns(ctx, len(conns))
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "events: list connections", "err", err)
		return
	}
	for key, c := range conns {
		if !open[key] {
			s.live.drop(key)
			continue
		}
		vctx, err := s.cfg.Tokens.Verify(ctx, c.token)
		if err == nil {
			// A partner's session keeps to its trust's networks of now,
			// as on the API: a connection from an address the trust no
			// longer lets in closes too.
			if tc, ok := tenant.FromContext(vctx); ok && string(tc.TenantID) == c.tid && partnerInNetworks(tc, c.host) {
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		s.live.drop(key)
		if err := s.closeConn(ctx, key); err != nil {
			continue // gone meanwhile
		}
		s.cfg.Logger.InfoContext(ctx, "events: connection closed: its token is no longer good", "tenant_id", c.tid)
	}
}

// kick closes tenant tid's connections now.
func (s *Server) kick(ctx context.Context, tid string) {
	for key, c := range s.live.snapshot() {
		if c.tid == tid {
			s.live.drop(key)
			_ = s.closeConn(ctx, key)
		}
	}
}

// OffboardingStep removes a leaving tenant's stream, with its messages
// and consumers, and closes its connections. (Offboarding runs its steps
// in reverse: registered after the others, this one runs first.)
func (s *Server) OffboardingStep() tenants.Step {
	return tenants.Step{
		Name: "events-delete",
		Work: func(ctx context.Context, t tenants.Tenant) (func(bool), error) {
			tid := string(t.ID)
			s.kick(ctx, tid)
			// On an external server a tenant that was never given an
			// account has no stream to delete: giving it one now would
			// hold that account in quarantine for a day, and fail when
			// every account is taken.
			held := true
			if s.ns == nil {
				acc, err := s.heldSlot(ctx, tid)
				if err != nil {
					return nil, err
				}
				held = acc != ""
			}
			if held {
				p, err := s.placeFor(ctx, tid)
				if err != nil {
					return nil, err
				}
				if err := p.js.DeleteStream(ctx, StreamName(tid)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
					return nil, err
				}
			}
			s.forgetAccount(tid)
			if err := s.releaseSlot(ctx, tid); err != nil {
				return nil, err
			}
			s.made.Range(func(k, _ any) bool {
				if key := k.(string); hasTenantKey(key, tid) {
					s.made.Delete(key)
				}
				return true
			})
			return nil, nil
		},
		Run: func(context.Context, *storage.Tx, tenants.Tenant) error { return nil },
	}
}

// hasTenantKey reports whether a key of s.made is tenant tid's: its
// stream's ("<tid>/…") or a consumer's ("c/<tid>/…").
func hasTenantKey(key, tid string) bool {
	return strings.HasPrefix(key, tid+"/") || strings.HasPrefix(key, "c/"+tid+"/")
}
