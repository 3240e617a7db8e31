package authz

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// A partner's session (a token a third-party partner got by assuming a
// tenant's trust, package partners) asks for decisions about itself only.
// Its principal is the entity Bulkhead::Partner::"<partner id>", whose
// attributes Bulkhead sets from the verified token, whatever the request's
// entities say:
//
//	principal.trust   the trust's id (String)
//	principal.tags    the session tags (a Record of Strings: partner,
//	                  trust, and those the trust lets the partner set)
//
// The trust's own policy, if it has one, bounds every such decision: the
// answer is allow only if the tenant's effective set allows and the bound
// does too (a permit matches and no forbid does; a forbid that cannot be
// evaluated denies). Policies of the bound are named "trust/<n>" in the
// determining policies.
//
// A schema, when the store has one, checks the request's entities; the
// request itself is not checked against it for a partner's session (the
// schema need not declare Bulkhead::Partner, and tags have no fixed type).

// PartnerType is the Cedar entity type of a partner's session.
const PartnerType = "Bulkhead::Partner"

// boundPrefix names a trust's policies in a decision.
const boundPrefix = "trust/"

// MaxBoundPolicies bounds the statements of a trust's policy.
const MaxBoundPolicies = 100

// Partner is a partner's session asking.
type Partner struct {
	ID    string
	Trust string
	Tags  map[string]string
	// Bound is the trust's Cedar policy text ("": none).
	Bound string
}

// PartnerFrom returns the Partner of a tenant context's partner session.
func PartnerFrom(ps *tenant.PartnerSession) *Partner {
	if ps == nil {
		return nil
	}
	return &Partner{ID: ps.PartnerID, Trust: ps.TrustID, Tags: ps.Tags, Bound: ps.Policy}
}

// session is a Partner with its bound compiled.
type session struct {
	uid    types.EntityUID
	entity types.Entity
	bound  *cedar.PolicySet // nil: none
}

// parseBound parses a trust's policy: 1 to MaxBoundPolicies permit or
// forbid statements, no template slots.
func parseBound(field, text string) (*cedar.PolicySet, error) {
	if text == "" {
		return nil, nil // no bound; blanks are no statement, refused below
	}
	if !utf8.ValidString(text) {
		return nil, errs.Field(field, "invalid_policy", "the policy is not valid UTF-8")
	}
	list, err := cedar.NewPolicyListFromBytes("", []byte(text))
	if err != nil {
		return nil, errs.Field(field, "invalid_policy", "%s", cedarMessage(err))
	}
	if len(list) == 0 || len(list) > MaxBoundPolicies {
		return nil, errs.Field(field, "invalid_policy", "the policy holds %d statements; send 1 to %d", len(list), MaxBoundPolicies)
	}
	ps := cedar.NewPolicySet()
	for i, p := range list {
		ps.Add(cedar.PolicyID(fmt.Sprintf("%s%d", boundPrefix, i)), p)
	}
	return ps, nil
}

// CheckBound checks a trust's policy text for tenant tid (its syntax).
func (s *Service) CheckBound(ctx context.Context, tid tenant.ID, text string) error {
	_, err := s.bound(text)
	return err
}

// bound returns the compiled policy set of a trust's text, cached by its
// hash (the text is the tenant's; the set holds nothing else).
func (s *Service) bound(text string) (*cedar.PolicySet, error) {
	if text == "" {
		return nil, nil
	}
	key := sha256.Sum256([]byte(text))
	if ps, ok := s.cache.bounds.Get(key); ok {
		return ps, nil
	}
	gen := s.cache.bounds.Generation()
	ps, err := parseBound("policy", text)
	if err != nil {
		return nil, err
	}
	s.cache.bounds.Put(key, ps, gen)
	return ps, nil
}

// session compiles a partner's session for decide.
func (s *Service) session(p *Partner) (*session, error) {
	if p == nil {
		return nil, nil
	}
	ps, err := s.bound(p.Bound)
	if err != nil {
		return nil, errs.E(errs.Internal, "internal", "the trust's policy no longer parses")
	}
	tags := types.RecordMap{}
	for k, v := range p.Tags {
		tags[types.String(k)] = types.String(v)
	}
	uid := types.NewEntityUID(PartnerType, types.String(p.ID))
	return &session{uid: uid, bound: ps, entity: types.Entity{UID: uid, Parents: types.NewEntityUIDSet(),
		Attributes: types.NewRecord(types.RecordMap{"trust": types.String(p.Trust), "tags": types.NewRecord(tags)})}}, nil
}

// applyBound turns an allow into a deny unless the bound allows too.
func (ses *session) applyBound(out *Decision, entities types.EntityMap, req cedar.Request) {
	if ses == nil || ses.bound == nil || out.Decision != Allow {
		return
	}
	dec, diag := cedar.Authorize(ses.bound, entities, req)
	var forbids []string
	for _, r := range diag.Reasons {
		if p := ses.bound.Get(r.PolicyID); p != nil && p.Effect() == cedar.Forbid {
			forbids = append(forbids, string(r.PolicyID))
		}
	}
	for _, de := range diag.Errors {
		out.Errors = append(out.Errors, DecisionError{Policy: string(de.PolicyID), Message: de.Message})
		if p := ses.bound.Get(de.PolicyID); p != nil && p.Effect() == cedar.Forbid {
			// A forbid of the bound that cannot be evaluated denies.
			dec = cedar.Deny
			forbids = append(forbids, string(de.PolicyID))
		}
	}
	if dec == cedar.Allow {
		for _, r := range diag.Reasons {
			out.DeterminingPolicies = append(out.DeterminingPolicies, string(r.PolicyID))
		}
		return
	}
	out.Decision = Deny
	out.DeterminingPolicies = forbids
	if len(forbids) == 0 {
		out.DeterminingPolicies = []string{strings.TrimSuffix(boundPrefix, "/")} // no permit of the trust matched
	}
}
