package connect

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// CreateGrantRequest adds a grant to a connection. Bulkhead does not hold
// the token, so the request brings it: Token (checked against the
// connection's) or PartA, a current Part A of one of the connection's
// active grants. (Inside a CreateRequest neither is needed.)
type CreateGrantRequest struct {
	Name        string `json:"name,omitempty"`
	AutoSuspend bool   `json:"auto_suspend,omitempty"`
	Token       string `json:"token,omitempty"`
	PartA       string `json:"part_a,omitempty"`
}

func (r CreateGrantRequest) check() error {
	if r.Name != "" {
		return validName("grant.name", r.Name)
	}
	return nil
}

// TokenSource brings the token for a rotation: Token or a current PartA of
// the connection (the grant's own, or another active grant's).
type TokenSource = api.TokenSource

// tokenFrom returns connection c's token from src, checked: a token must
// match the connection's fingerprint; a Part A must authenticate as an
// active grant of c. The caller clears the result.
func (s *Service) tokenFrom(ctx context.Context, tid tenant.ID, c connRow, src TokenSource) ([]byte, error) {
	switch {
	case src.Token != "" && src.PartA != "":
		return nil, errs.Field("token", "invalid_token_source", "send token or part_a, not both")
	case src.Token != "":
		if err := checkToken(src.Token); err != nil {
			return nil, err
		}
		token := []byte(src.Token)
		if !equalHash(s.fingerprint(tid, c.ID, token), c.fingerprint) {
			clear(token)
			return nil, errs.Field("token", "token_mismatch", "the token is not this connection's token")
		}
		return token, nil
	case src.PartA != "":
		refused := errs.Field("part_a", "invalid_part_a", "part_a is not a current Part A of an active grant of this connection")
		pa, err := ParsePartA(src.PartA)
		if err != nil || pa.Tenant != tid {
			return nil, refused
		}
		defer clear(pa.Pad)
		var g grantRow
		err = s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) (err error) {
			g, err = readGrant(ctx, tx, c.ID, pa.Grant)
			return err
		})
		if err != nil {
			if errs.Is(err, "grant_not_found") {
				return nil, refused
			}
			return nil, err
		}
		if !equalHash(s.partAHash(src.PartA), g.partAHash) || g.Status != GrantActive {
			return nil, refused
		}
		return s.recombine(ctx, tid, c.ID, g.ID, g.partB, pa.Pad)
	}
	return nil, errs.Field("token", "token_required",
		"Bulkhead never keeps the whole token, so this needs it again: send token (the connection's upstream token) or part_a (a current Part A of the connection)")
}

// recombine decrypts a stored Part B and XORs it with pad. The caller
// clears the token.
func (s *Service) recombine(ctx context.Context, tid tenant.ID, connID, grantID, sealedB string, pad []byte) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(sealedB)
	if err != nil {
		return nil, fmt.Errorf("connect: stored part B of %s: %w", grantID, err)
	}
	partB, err := s.kms.Open(ctx, tid, ct, partBContext(tid, connID, grantID))
	if err != nil {
		return nil, fmt.Errorf("connect: open part B of %s: %w", grantID, err)
	}
	defer clear(partB)
	token := combine(pad, partB)
	if token == nil {
		return nil, errPartA()
	}
	return token, nil
}

// CreateGrant adds a grant to connection connID of tenant tid.
func (s *Service) CreateGrant(ctx context.Context, tid tenant.ID, connID string, req CreateGrantRequest, actor tenant.Actor) (IssuedGrant, error) {
	if err := req.check(); err != nil {
		return IssuedGrant{}, err
	}
	c, err := s.readConn(ctx, tid, connID)
	if err != nil {
		return IssuedGrant{}, err
	}
	token, err := s.tokenFrom(ctx, tid, c, TokenSource{Token: req.Token, PartA: req.PartA})
	if err != nil {
		return IssuedGrant{}, err
	}
	defer clear(token)
	now := s.now()
	g := Grant{ID: ids.New(grantPrefix), ConnectionID: connID, Name: req.Name, Status: GrantActive, AutoSuspend: req.AutoSuspend,
		CreatedAt: now, UpdatedAt: now}
	partA, hash, sealedB, err := s.issue(ctx, tid, connID, g.ID, token)
	if err != nil {
		return IssuedGrant{}, err
	}
	err = s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return inval.Change{}, err
		}
		c2, err := readConn(ctx, tx, connID, true)
		if err != nil {
			return inval.Change{}, err
		}
		if c2.TokenVersion != c.TokenVersion {
			return inval.Change{}, errs.E(errs.Conflict, "connection_changed", "the connection's token was replaced meanwhile; send the request again")
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM connect_grants WHERE tenant_id = ? AND connection_id = ?`, tx.TenantID(), connID).Scan(&n); err != nil {
			return inval.Change{}, fmt.Errorf("connect: count grants: %w", err)
		}
		if n >= MaxGrants {
			return inval.Change{}, errs.E(errs.Conflict, "too_many_grants", "a connection has at most %d grants", MaxGrants)
		}
		if err := insertGrant(ctx, tx, g, hash, sealedB); err != nil {
			return inval.Change{}, err
		}
		return inval.Change{Action: "connection.grant_created", Target: g.ID, Detail: map[string]string{"connection": connID}}, nil
	})
	if err != nil {
		return IssuedGrant{}, err
	}
	return IssuedGrant{Grant: g, PartA: partA}, nil
}

// MaxGrants bounds the grants of one connection.
const MaxGrants = 100

// ListGrants returns connection connID's grants.
func (s *Service) ListGrants(ctx context.Context, tid tenant.ID, connID string) ([]Grant, error) {
	out := []Grant{}
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if _, err := readConn(ctx, tx, connID, false); err != nil {
			return err
		}
		gs, err := listGrants(ctx, tx, connID)
		for _, g := range gs {
			out = append(out, g.Grant)
		}
		return err
	})
	return out, err
}

// Rotate gives a grant a new Part A (its old one stops working at once)
// without touching the upstream token, which src brings (see TokenSource).
func (s *Service) Rotate(ctx context.Context, tid tenant.ID, connID, grantID string, src TokenSource, actor tenant.Actor) (IssuedGrant, error) {
	c, err := s.readConn(ctx, tid, connID)
	if err != nil {
		return IssuedGrant{}, err
	}
	var g grantRow
	if err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) (err error) {
		g, err = readGrant(ctx, tx, connID, grantID)
		return err
	}); err != nil {
		return IssuedGrant{}, err
	}
	token, err := s.tokenFrom(ctx, tid, c, src)
	if err != nil {
		return IssuedGrant{}, err
	}
	defer clear(token)
	partA, hash, sealedB, err := s.issue(ctx, tid, connID, grantID, token)
	if err != nil {
		return IssuedGrant{}, err
	}
	err = s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		c2, err := readConn(ctx, tx, connID, true)
		if err != nil {
			return inval.Change{}, err
		}
		if c2.TokenVersion != c.TokenVersion {
			return inval.Change{}, errs.E(errs.Conflict, "connection_changed", "the connection's token was replaced meanwhile; send the request again")
		}
		if g, err = readGrant(ctx, tx, connID, grantID); err != nil {
			return inval.Change{}, err
		}
		now := s.now()
		if _, err := tx.Exec(ctx, `UPDATE connect_grants SET part_a_hash = ?, part_b = ?, rotated_at = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			hash, sealedB, now.UnixMicro(), now.UnixMicro(), tx.TenantID(), grantID); err != nil {
			return inval.Change{}, fmt.Errorf("connect: rotate grant: %w", err)
		}
		g.RotatedAt, g.UpdatedAt = &now, now
		return inval.Change{Action: "connection.grant_rotated", Target: grantID, Detail: map[string]string{"connection": connID}}, nil
	})
	if err != nil {
		return IssuedGrant{}, err
	}
	return IssuedGrant{Grant: g.Grant, PartA: partA}, nil
}

// SetGrantStatus suspends (with a reason) or resumes a grant; a suspended
// grant's Part A is refused from the next request on.
func (s *Service) SetGrantStatus(ctx context.Context, tid tenant.ID, connID, grantID string, suspend bool, reason string, actor tenant.Actor) (Grant, error) {
	var g grantRow
	err := s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		var err error
		if g, err = s.setStatus(ctx, tx, connID, grantID, suspend, reason); err != nil {
			return inval.Change{}, err
		}
		if suspend {
			return inval.Change{Action: "connection.grant_suspended", Target: grantID, Detail: map[string]string{"connection": connID, "reason": g.SuspendedReason}}, nil
		}
		return inval.Change{Action: "connection.grant_resumed", Target: grantID, Detail: map[string]string{"connection": connID}}, nil
	})
	return g.Grant, err
}

func (s *Service) setStatus(ctx context.Context, tx *storage.Tx, connID, grantID string, suspend bool, reason string) (grantRow, error) {
	if _, err := readConn(ctx, tx, connID, true); err != nil {
		return grantRow{}, err
	}
	g, err := readGrant(ctx, tx, connID, grantID)
	if err != nil {
		return g, err
	}
	g.Status, g.SuspendedReason = GrantActive, ""
	if suspend {
		g.Status, g.SuspendedReason = GrantSuspended, errs.Clip(reason, 200)
		if g.SuspendedReason == "" {
			g.SuspendedReason = "suspended on request"
		}
	}
	g.UpdatedAt = s.now()
	if _, err := tx.Exec(ctx, `UPDATE connect_grants SET status = ?, suspended_reason = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
		g.Status, g.SuspendedReason, g.UpdatedAt.UnixMicro(), tx.TenantID(), grantID); err != nil {
		return g, fmt.Errorf("connect: set grant status: %w", err)
	}
	return g, nil
}

// DeleteGrant removes a grant: its Part A is refused from the next request
// on, and its Part B is gone.
func (s *Service) DeleteGrant(ctx context.Context, tid tenant.ID, connID, grantID string, actor tenant.Actor) error {
	err := s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		if _, err := readConn(ctx, tx, connID, true); err != nil {
			return inval.Change{}, err
		}
		if _, err := readGrant(ctx, tx, connID, grantID); err != nil {
			return inval.Change{}, err
		}
		for _, q := range []string{`DELETE FROM connect_grants WHERE tenant_id = ? AND id = ?`, `DELETE FROM connect_networks WHERE tenant_id = ? AND grant_id = ?`} {
			if _, err := tx.Exec(ctx, q, tx.TenantID(), grantID); err != nil {
				return inval.Change{}, fmt.Errorf("connect: delete grant: %w", err)
			}
		}
		return inval.Change{Action: "connection.grant_deleted", Target: grantID, Detail: map[string]string{"connection": connID}}, nil
	})
	if err == nil {
		s.detector.drop(grantID)
	}
	return err
}

// partBContext binds a Part B to its tenant, connection and grant.
func partBContext(tid tenant.ID, connID, grantID string) kms.Context {
	return kms.Context{"tenant_id": string(tid), "connection_id": connID, "grant_id": grantID, "purpose": "connect.part_b"}
}

// issue splits token for a new or rotated grant: the Part A to hand out,
// and what to store (its hash and Part B sealed under the tenant's key).
func (s *Service) issue(ctx context.Context, tid tenant.ID, connID, grantID string, token []byte) (partA, hash, sealedB string, err error) {
	pad, partB := split(token)
	defer clear(partB)
	ct, err := s.kms.Seal(ctx, tid, partB, partBContext(tid, connID, grantID))
	if err != nil {
		clear(pad)
		return "", "", "", fmt.Errorf("connect: seal part B: %w", err)
	}
	partA = PartA{Tenant: tid, Grant: grantID, Pad: pad}.String()
	clear(pad)
	return partA, s.partAHash(partA), base64.StdEncoding.EncodeToString(ct), nil
}

func (s *Service) partAHash(partA string) string {
	return keyedHash(s.opts.HashKey[:], "part-a", partA)
}

func (s *Service) fingerprint(tid tenant.ID, connID string, token []byte) string {
	return keyedHash(s.opts.HashKey[:], "token", string(tid), connID, string(token))
}
