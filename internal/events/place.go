package events

import (
	"context"
	"crypto/subtle"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// Where a tenant's stream lives: every tenant, in every tier, has a NATS
// account of its own, so its subjects, its stream, its JetStream usage and
// its replies are in a namespace no other tenant's user can even name.
// (Within one shared account, subject permissions cannot keep a tenant
// from reaching another's subjects: nats-server checks neither a push
// consumer's deliver subject nor a publish's reply subject against the
// user's permissions, and JetStream answers to any reply subject.) On
// the embedded server the account is A_<tenant>, registered when first
// needed; on an external one it is one of the accounts its configuration
// declares, given to the tenant for good (slots.go).
//
// Bulkhead reaches a tenant's account through a connection of its own
// there, which the auth callout lets in as a user with no limits inside
// that account: its name is tenantUserPrefix and the tenant, its
// password the streams user's (compared in constant time). At most
// maxAccountConns are kept open, the least recently used closed.

// tenantUserPrefix begins the name of Bulkhead's own user in a tenant's account.
const tenantUserPrefix = "bulkhead-tenant:"

// tenantAccount is tenant tid's account on the embedded server.
func tenantAccount(tid string) string { return "A_" + tid }

// maxAccountConns bounds Bulkhead's open connections to tenants' accounts.
const maxAccountConns = 1024

// place is where a tenant's stream lives: its account and Bulkhead's
// connection there.
type place struct {
	account string
	nc      *nats.Conn
	js      jetstream.JetStream
}

// accountFor is the account of tenant tid's stream.
func (s *Server) accountFor(ctx context.Context, tid string) (string, error) {
	if s.ns != nil {
		return tenantAccount(tid), nil
	}
	return s.slotOf(ctx, tid)
}

// placeFor is where tenant tid's stream lives, its account registered
// and Bulkhead connected to it.
func (s *Server) placeFor(ctx context.Context, tid string) (*place, error) {
	if p, ok := s.accounts.Get(tid); ok {
		return p, nil
	}
	s.accountMu.Lock()
	defer s.accountMu.Unlock()
	if p, ok := s.accounts.Get(tid); ok {
		return p, nil
	}
	acc, err := s.accountFor(ctx, tid)
	if err != nil {
		return nil, err
	}
	if err := s.registerAccount(acc); err != nil {
		return nil, err
	}
	nc, err := s.connect(ctx, "bulkhead tenant "+tid, tenantUserPrefix+tid, s.creds.StreamsPassword)
	if err != nil {
		return nil, fmt.Errorf("events: connect to account %s: %w", acc, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	p := &place{account: acc, nc: nc, js: js}
	s.accounts.Put(tid, p, s.accounts.Generation())
	return p, nil
}

// registerAccount registers a tenant's account on the embedded server,
// with JetStream (an external server's are in its configuration).
func (s *Server) registerAccount(acc string) error {
	if s.ns == nil {
		return nil
	}
	a, _ := s.ns.LookupOrRegisterAccount(acc)
	if !a.JetStreamEnabled() {
		// The stream's own limits bound what the tenant keeps; the
		// account holds that one stream.
		if err := a.EnableJetStream(map[string]server.JetStreamAccountLimits{"": {MaxMemory: -1, MaxStore: -1, MaxStreams: 1, MaxConsumers: -1}}, nil); err != nil {
			return fmt.Errorf("events: JetStream for account %s: %w", acc, err)
		}
	}
	return nil
}

// newAccountConns is the cache of Bulkhead's connections to tenants'
// accounts; one it drops is closed a little later (a request may still
// hold it).
func newAccountConns() *lru.Cache[string, *place] {
	return lru.New[string, *place](lru.Options[*place]{Size: maxAccountConns, OnEvict: func(p *place) {
		time.AfterFunc(30*time.Second, p.nc.Close)
	}})
}

// forgetAccount closes Bulkhead's connection to tenant tid's account.
func (s *Server) forgetAccount(tid string) { s.accounts.Evict(tid) }

// tenantUser answers Bulkhead's own connection to a tenant's account: a
// user with no limits in that account, for the right password only.
func (s *Server) tenantUser(ctx context.Context, req *jwt.AuthorizationRequestClaims) (string, string, bool) {
	name := req.ConnectOptions.Username
	tid, ok := strings.CutPrefix(name, tenantUserPrefix)
	if !ok {
		return "", "", false
	}
	if subtle.ConstantTimeCompare([]byte(req.ConnectOptions.Password), []byte(s.creds.StreamsPassword)) != 1 {
		return "", "not Bulkhead's tenant user", true
	}
	// Only after the password: the account is found (on an external
	// server, given) for Bulkhead alone.
	acc, err := s.accountFor(ctx, tid)
	if err != nil {
		return "", "no account for the tenant", true
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = name
	uc.Audience = acc
	out, err := uc.Encode(s.issuer)
	if err != nil {
		return "", "cannot issue the user", true
	}
	return out, "", true
}

// using runs fn with tenant tid's stream, made with its tier's limits
// if need be.
func (s *Server) using(ctx context.Context, tid string, tier tenants.Tier, fn func(p *place) error) error {
	p, err := s.placeFor(ctx, tid)
	if err != nil {
		return unavailable(err)
	}
	if err := s.ensureStream(ctx, p, tid, tier); err != nil {
		return unavailable(err)
	}
	return fn(p)
}
