package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
	"github.com/bulkhead-dev/bulkhead/sdk/envelope"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
)

// caller is who makes a request: the verified claims of its token, and a
// client of Bulkhead that sends that same token. Everything the service
// asks Bulkhead for a request (the tenant's placement, a decision, a data
// key) it asks as the caller, so Bulkhead itself confines the request to
// the caller's tenant.
type caller struct {
	claims *auth.Claims
	api    *client.Client
}

// callerOf returns the caller of a request that sdk/auth's middleware let
// through.
func (s *server) callerOf(r *http.Request) (*caller, error) {
	claims, ok := auth.FromContext(r.Context())
	if !ok || claims.TenantID == "" {
		// A platform client's token names no tenant: there are no notes
		// to give it.
		return nil, &problem{http.StatusForbidden, "tenant_required", "this service is for a tenant's credentials"}
	}
	// The middleware checked that the request has exactly one well-formed
	// bearer token, and validated it.
	_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	c := &client.Client{BaseURL: s.bulkhead, Token: strings.TrimLeft(token, " "), HTTP: s.http}
	return &caller{claims: claims, api: c}, nil
}

type callerKey struct{}

func withCaller(ctx context.Context, c *caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// callerResolver is tenantdb's Resolver: it asks Bulkhead for the
// placement of the tenant of the request's caller, with the caller's
// token (GET /v1/tenants/{tenant}/placement answers a tenant's own
// credential). tenantdb caches the answer per tenant and drops it when
// Bulkhead notifies a change.
type callerResolver struct{}

func (callerResolver) Placement(ctx context.Context, tenantID string) (api.DataPlacement, error) {
	c, ok := ctx.Value(callerKey{}).(*caller)
	if !ok || c.claims.TenantID != tenantID {
		return api.DataPlacement{}, fmt.Errorf("notes: no caller of tenant %q to ask its placement for", tenantID)
	}
	return c.api.GetPlacement(ctx, tenantID)
}

// principal is the caller as a note's author: "user:<id>" for a user's
// token, "client:<id>" for a client's own (client credentials), whose
// subject is the client.
func (c *caller) principal() string {
	if c.claims.Subject == c.claims.ClientID {
		return "client:" + c.claims.Subject
	}
	return "user:" + c.claims.Subject
}

// entityOf is the Cedar entity of a principal string: User::"<id>" (the
// policy store's default principal type, whose groups Bulkhead knows) or
// Client::"<id>".
func entityOf(principal string) api.EntityRef {
	if id, ok := strings.CutPrefix(principal, "user:"); ok {
		return api.EntityRef{Type: "User", ID: id}
	}
	id, _ := strings.CutPrefix(principal, "client:")
	return api.EntityRef{Type: "Client", ID: id}
}

// resource is what a decision is about: the entity, and its attributes
// in Cedar's JSON entity format (nil for none).
type resource struct {
	ref      api.EntityRef
	entities json.RawMessage
}

// notebook is the tenant's notes as a whole, which create and list act on.
func notebook() resource { return resource{ref: api.EntityRef{Type: "Notebook", ID: "notes"}} }

// noteEntity is one note, with its author for the delete rule.
func noteEntity(n row) resource {
	ref := api.EntityRef{Type: "Note", ID: n.id}
	type uid = api.EntityRef
	ent := []struct {
		UID     uid            `json:"uid"`
		Attrs   map[string]any `json:"attrs"`
		Parents []uid          `json:"parents"`
	}{{UID: ref, Attrs: map[string]any{"author": map[string]uid{"__entity": entityOf(n.author)}}, Parents: []uid{}}}
	b, _ := json.Marshal(ent) // strings and maps: cannot fail
	return resource{ref: ref, entities: b}
}

// authorize asks Bulkhead's Cedar policies of the caller's tenant whether
// the caller may do action on res; a deny is 403. A user's token is sent
// without a principal: Bulkhead takes the user, with the groups its
// records hold today, rather than anything this service could claim.
func (s *server) authorize(ctx context.Context, c *caller, action string, res resource) error {
	req := client.AuthorizeRequest{Action: &api.EntityRef{Type: "Action", ID: action}, Resource: &res.ref, Entities: res.entities}
	if p := entityOf(c.principal()); p.Type != "User" {
		req.Principal = &p
	}
	d, err := c.api.Authorize(ctx, c.claims.TenantID, req)
	if err != nil {
		return fmt.Errorf("authorize %s: %w", action, err)
	}
	if d.Decision != client.DecisionAllow {
		return &problem{http.StatusForbidden, "not_allowed", "the tenant's policies do not allow " + action + " here"}
	}
	return nil
}

// crypter encrypts and decrypts notes' bodies with data keys that
// Bulkhead's KMS makes and unwraps for the caller, under the caller's
// tenant's key. Data keys are cached, one partition per caller: a data
// key that one caller's token unwrapped is never used for another's.
func (s *server) crypter(c *caller) *envelope.Crypter {
	cr, _ := envelope.New(envelope.Config{Provider: envelope.KMSProvider{Client: c.api}, Cache: s.keys,
		Partition: c.claims.TenantID + "\x00" + c.principal()}) // fails only on a missing provider or a bad frame size
	return cr
}

// keyID is the caller's tenant's own key, which onboarding makes.
func (c *caller) keyID() string { return "alias/customer-" + c.claims.TenantID }

// field is the encryption context of note id's body: the value decrypts
// in that row of that tenant only.
func (c *caller) field(id string) envelope.FieldRef {
	return envelope.FieldRef{Tenant: c.claims.TenantID, Table: notesTable, PrimaryKey: id, Column: bodyColumn}
}

// bulkheadProblem is the answer to an error that is not the service's
// own: Bulkhead refusing the caller's token (the caller's problem: its
// status and code are passed on), Bulkhead unreachable or failing (502),
// or anything else (500; the log has it).
func bulkheadProblem(err error) *problem {
	var ce *client.Error
	var ue *url.Error
	switch {
	case errors.As(err, &ce) && (ce.Status == http.StatusUnauthorized || ce.Code == "scope_required"):
		return &problem{ce.Status, ce.Code, "Bulkhead refused the caller's token: " + ce.Detail}
	case errors.As(err, &ce) && ce.Status >= 500, errors.As(err, &ue):
		return &problem{http.StatusBadGateway, "bulkhead_unavailable", "Bulkhead could not answer"}
	case errors.Is(err, tenantdb.ErrPlacementNotReady):
		return &problem{http.StatusServiceUnavailable, "placement_not_ready", "the tenant's data is not ready yet"}
	}
	return &problem{http.StatusInternalServerError, "internal", "the request could not be completed"}
}
