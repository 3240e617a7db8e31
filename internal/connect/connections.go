package connect

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// CreateRequest creates a connection. Token is the upstream token; it is
// split at once and never stored whole.
type CreateRequest struct {
	Name           string    `json:"name"`
	UpstreamURL    string    `json:"upstream_url"`
	Token          string    `json:"token"`
	Placement      Placement `json:"placement"`
	AllowedMethods []string  `json:"allowed_methods,omitempty"`
	AllowedPaths   []string  `json:"allowed_paths,omitempty"`
	Alerts         Alerts    `json:"alerts"`
	// Grant names the first grant, made with the connection.
	Grant CreateGrantRequest `json:"grant"`
}

// Created is a new connection with its first grant (whose Part A is shown
// this once) and, when an alert webhook is set, the webhook's signing
// secret (shown this once too).
type Created struct {
	Connection
	Grant         IssuedGrant `json:"grant"`
	WebhookSecret string      `json:"webhook_secret,omitempty"`
}

// Create makes a connection in tenant tid, with its first grant.
func (s *Service) Create(ctx context.Context, tid tenant.ID, req CreateRequest, actor tenant.Actor) (Created, error) {
	if err := validName("name", req.Name); err != nil {
		return Created{}, err
	}
	u, err := s.parseUpstream("upstream_url", req.UpstreamURL)
	if err != nil {
		return Created{}, err
	}
	if err := checkToken(req.Token); err != nil {
		return Created{}, err
	}
	if err := req.Placement.check(); err != nil {
		return Created{}, err
	}
	ms, err := checkMethods(req.AllowedMethods)
	if err != nil {
		return Created{}, err
	}
	ps, err := checkPaths(req.AllowedPaths)
	if err != nil {
		return Created{}, err
	}
	if err := s.checkAlerts(&req.Alerts); err != nil {
		return Created{}, err
	}
	if err := req.Grant.check(); err != nil {
		return Created{}, err
	}
	now := s.now()
	c := Connection{ID: ids.New(connectionPrefix), TenantID: tid, Name: req.Name, UpstreamURL: u.String(), Placement: req.Placement,
		AllowedMethods: ms, AllowedPaths: ps, Alerts: req.Alerts, TokenVersion: 1, CreatedAt: now, UpdatedAt: now}
	token := []byte(req.Token)
	defer clear(token)
	// Sealing reads the tenant's key in transactions of its own: done
	// before this one, which then only writes.
	g := Grant{ID: ids.New(grantPrefix), ConnectionID: c.ID, Name: req.Grant.Name, Status: GrantActive, AutoSuspend: req.Grant.AutoSuspend,
		CreatedAt: now, UpdatedAt: now}
	partA, hash, sealedB, err := s.issue(ctx, tid, c.ID, g.ID, token)
	if err != nil {
		return Created{}, err
	}
	var secret, sealedSecret string
	if c.Alerts.WebhookURL != "" {
		if secret, sealedSecret, err = s.newWebhookSecret(ctx, tid, c.ID); err != nil {
			return Created{}, err
		}
	}
	row := connRow{Connection: c, fingerprint: s.fingerprint(tid, c.ID, token), webhookSecret: sealedSecret}
	err = s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return inval.Change{}, err
		}
		if err := tx.WithinQuota(ctx, "connect_connections", MaxConnectionsPerTenant, "connections"); err != nil {
			return inval.Change{}, err
		}
		if err := insertConn(ctx, tx, row); err != nil {
			return inval.Change{}, err
		}
		if err := insertGrant(ctx, tx, g, hash, sealedB); err != nil {
			return inval.Change{}, err
		}
		return inval.Change{Action: "connection.created", Target: c.ID, Detail: map[string]string{"name": c.Name, "upstream": u.Host, "grant": g.ID}}, nil
	})
	if err != nil {
		return Created{}, err
	}
	return Created{Connection: c, Grant: IssuedGrant{Grant: g, PartA: partA}, WebhookSecret: secret}, nil
}

// Get returns connection id of tenant tid.
func (s *Service) Get(ctx context.Context, tid tenant.ID, id string) (Connection, error) {
	c, err := s.readConn(ctx, tid, id)
	return c.Connection, err
}

// Page is a page of connections.
type Page struct {
	Items      []Connection `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

// List returns tenant tid's connections, by id.
func (s *Service) List(ctx context.Context, tid tenant.ID, limit int, cursor string) (Page, error) {
	limit, after, err := page.Bounds(limit, cursor)
	if err != nil {
		return Page{}, err
	}
	out := Page{Items: []Connection{}}
	err = s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+connColumns+` FROM connect_connections WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`,
			tx.TenantID(), after, limit+1)
		if err != nil {
			return fmt.Errorf("connect: list connections: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanConn(tx.TenantID(), rows)
			if err != nil {
				return fmt.Errorf("connect: list connections: %w", err)
			}
			out.Items = append(out.Items, c.Connection)
		}
		return rows.Err()
	})
	if err != nil {
		return Page{}, err
	}
	out.Items, out.NextCursor = page.Trim(out.Items, limit, func(c Connection) string { return c.ID })
	return out, nil
}

// UpdateRequest changes a connection; absent fields stay. A new Token
// re-splits every grant (each gets a new Part A; the old ones stop
// working). The upstream URL can change only together with the token, so
// that a token is never sent to a host it was not given for.
type UpdateRequest struct {
	Name           *string    `json:"name,omitempty"`
	UpstreamURL    *string    `json:"upstream_url,omitempty"`
	Token          *string    `json:"token,omitempty"`
	Placement      *Placement `json:"placement,omitempty"`
	AllowedMethods *[]string  `json:"allowed_methods,omitempty"`
	AllowedPaths   *[]string  `json:"allowed_paths,omitempty"`
	Alerts         *Alerts    `json:"alerts,omitempty"`
}

// Updated is a changed connection; after a token replacement, its grants'
// new Part As (shown this once), and a new webhook secret when the
// webhook changed.
type Updated struct {
	Connection
	Grants        []IssuedGrant `json:"grants,omitempty"`
	WebhookSecret string        `json:"webhook_secret,omitempty"`
}

// Update changes connection id of tenant tid.
func (s *Service) Update(ctx context.Context, tid tenant.ID, id string, req UpdateRequest, actor tenant.Actor) (Updated, error) {
	ch, err := s.checkUpdate(req)
	if err != nil {
		return Updated{}, err
	}
	defer clear(ch.token)
	// Sealing reads the tenant's key in transactions of its own: the new
	// Part Bs and webhook secret are sealed before the writing
	// transaction, which checks that the grants are still the same.
	splits, err := s.sealResplits(ctx, tid, id, ch.token)
	if err != nil {
		return Updated{}, err
	}
	var secret, sealedSecret string
	if ch.alerts != nil && ch.alerts.WebhookURL != "" {
		if secret, sealedSecret, err = s.newWebhookSecret(ctx, tid, id); err != nil {
			return Updated{}, err
		}
	}
	var out Updated
	err = s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		c, err := readConn(ctx, tx, id, true)
		if err != nil {
			return inval.Change{}, err
		}
		detail, newSecret := ch.apply(&c, sealedSecret)
		now := s.now()
		if ch.token != nil {
			if out.Grants, err = resplitGrants(ctx, tx, id, splits, now); err != nil {
				return inval.Change{}, err
			}
			c.fingerprint = s.fingerprint(tid, id, ch.token)
			c.TokenVersion++
			detail["token"] = "replaced"
			detail["grants_resplit"] = fmt.Sprint(len(splits))
		}
		c.UpdatedAt = now
		if err := updateConn(ctx, tx, c); err != nil {
			return inval.Change{}, err
		}
		if newSecret {
			out.WebhookSecret = secret
		}
		out.Connection = c.Connection
		return inval.Change{Action: "connection.updated", Target: id, Detail: detail}, nil
	})
	if err != nil {
		return Updated{}, err
	}
	return out, nil
}

// connChange is an UpdateRequest checked and in canonical form; a nil
// field (or an empty upstream) leaves the connection's value as it is.
type connChange struct {
	name      *string
	upstream  string
	token     []byte // the caller clears it
	placement *Placement
	methods   []string
	paths     []string
	alerts    *Alerts
}

// checkUpdate checks req, field by field in the order of its errors.
func (s *Service) checkUpdate(req UpdateRequest) (connChange, error) {
	ch := connChange{name: req.Name, placement: req.Placement, alerts: req.Alerts}
	if req.Name != nil {
		if err := validName("name", *req.Name); err != nil {
			return ch, err
		}
	}
	if req.UpstreamURL != nil {
		if req.Token == nil {
			return ch, errs.Field("upstream_url", "token_required",
				"the upstream URL changes only with a new token (a token is never sent to a host it was not given for); send token too")
		}
		u, err := s.parseUpstream("upstream_url", *req.UpstreamURL)
		if err != nil {
			return ch, err
		}
		ch.upstream = u.String()
	}
	if req.Token != nil {
		if err := checkToken(*req.Token); err != nil {
			return ch, err
		}
	}
	if req.Placement != nil {
		if err := req.Placement.check(); err != nil {
			return ch, err
		}
	}
	var err error
	if req.AllowedMethods != nil {
		if ch.methods, err = checkMethods(*req.AllowedMethods); err != nil {
			return ch, err
		}
	}
	if req.AllowedPaths != nil {
		if ch.paths, err = checkPaths(*req.AllowedPaths); err != nil {
			return ch, err
		}
	}
	if req.Alerts != nil {
		if err := s.checkAlerts(req.Alerts); err != nil {
			return ch, err
		}
	}
	if req.Token != nil {
		ch.token = []byte(*req.Token) // last: no error return leaves it uncleared
	}
	return ch, nil
}

// apply writes the change into c and returns the audit detail, and
// whether c now holds sealedSecret: a webhook that is new (or had no
// secret) gets it; the same webhook keeps its secret; no webhook drops it.
func (ch connChange) apply(c *connRow, sealedSecret string) (detail map[string]string, newSecret bool) {
	detail = map[string]string{}
	if ch.name != nil {
		c.Name, detail["name"] = *ch.name, *ch.name
	}
	if ch.upstream != "" {
		c.UpstreamURL, detail["upstream_url"] = ch.upstream, "changed"
	}
	if ch.placement != nil {
		c.Placement, detail["placement"] = *ch.placement, ch.placement.Type
	}
	if ch.methods != nil {
		c.AllowedMethods, detail["allowed_methods"] = ch.methods, strings.Join(ch.methods, ",")
	}
	if ch.paths != nil {
		c.AllowedPaths, detail["allowed_paths"] = ch.paths, "changed"
	}
	if ch.alerts != nil {
		switch {
		case ch.alerts.WebhookURL == "":
			c.webhookSecret = ""
		case ch.alerts.WebhookURL != c.Alerts.WebhookURL || c.webhookSecret == "":
			c.webhookSecret, newSecret = sealedSecret, true
		}
		c.Alerts, detail["alerts"] = *ch.alerts, "changed"
	}
	return detail, newSecret
}

// resplit is one grant's new split of a replaced token: the Part A to
// hand out and what to store.
type resplit struct {
	id, partA, hash, sealedB string
}

// sealResplits splits token anew for each of connection id's grants
// (none when token is nil), before the writing transaction.
func (s *Service) sealResplits(ctx context.Context, tid tenant.ID, id string, token []byte) ([]resplit, error) {
	if token == nil {
		return nil, nil
	}
	var gs []grantRow
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if _, err := readConn(ctx, tx, id, false); err != nil {
			return err
		}
		var err error
		gs, err = listGrants(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	var splits []resplit
	for _, g := range gs {
		partA, hash, sealedB, err := s.issue(ctx, tid, id, g.ID, token)
		if err != nil {
			return nil, err
		}
		splits = append(splits, resplit{g.ID, partA, hash, sealedB})
	}
	return splits, nil
}

// resplitGrants stores splits as connection id's grants' new Part Bs, if
// the grants are still those they were made for, and returns the grants
// with their new Part As.
func resplitGrants(ctx context.Context, tx *storage.Tx, id string, splits []resplit, now time.Time) ([]IssuedGrant, error) {
	gs, err := listGrants(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	changed := errs.E(errs.Conflict, "connection_changed", "the connection's grants changed meanwhile; send the request again")
	if len(gs) != len(splits) {
		return nil, changed
	}
	var out []IssuedGrant
	for i, g := range gs {
		if g.ID != splits[i].id {
			return nil, changed
		}
		if _, err := tx.Exec(ctx, `UPDATE connect_grants SET part_a_hash = ?, part_b = ?, rotated_at = ?, updated_at = ?
			WHERE tenant_id = ? AND id = ?`, splits[i].hash, splits[i].sealedB, now.UnixMicro(), now.UnixMicro(), tx.TenantID(), g.ID); err != nil {
			return nil, fmt.Errorf("connect: re-split grant: %w", err)
		}
		g.RotatedAt, g.UpdatedAt = &now, now
		out = append(out, IssuedGrant{Grant: g.Grant, PartA: splits[i].partA})
	}
	return out, nil
}

// Delete removes a connection and its grants: every Part A of it stops
// working at once, and the stored Part Bs are gone.
// Its alerts stay, as history, in the tenant's alert list.
func (s *Service) Delete(ctx context.Context, tid tenant.ID, id string, actor tenant.Actor) error {
	var gone []grantRow
	err := s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		if _, err := readConn(ctx, tx, id, true); err != nil {
			return inval.Change{}, err
		}
		var err error
		if gone, err = listGrants(ctx, tx, id); err != nil {
			return inval.Change{}, err
		}
		for _, q := range []string{
			`DELETE FROM connect_networks WHERE tenant_id = ? AND grant_id IN (SELECT id FROM connect_grants WHERE tenant_id = ? AND connection_id = ?)`,
			`DELETE FROM connect_grants WHERE tenant_id = ? AND connection_id = ?`,
			`DELETE FROM connect_connections WHERE tenant_id = ? AND id = ?`,
		} {
			args := []any{tx.TenantID(), id}
			if strings.Count(q, "?") == 3 {
				args = []any{tx.TenantID(), tx.TenantID(), id}
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return inval.Change{}, fmt.Errorf("connect: delete connection: %w", err)
			}
		}
		return inval.Change{Action: "connection.deleted", Target: id}, nil
	})
	if err == nil {
		for _, g := range gone {
			s.detector.drop(g.ID)
		}
	}
	return err
}

// MaxConnectionsPerTenant bounds a tenant's connections.
const MaxConnectionsPerTenant = 1000

func (s *Service) readConn(ctx context.Context, tid tenant.ID, id string) (connRow, error) {
	var c connRow
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) (err error) {
		c, err = readConn(ctx, tx, id, false)
		return err
	})
	return c, err
}
