package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Limits on one authorization request.
const (
	MaxBatch          = 100   // requests in one batch
	MaxEntities       = 10000 // entities in one request
	maxContextNesting = 32
)

// Request asks whether principal may do action on resource.
type Request struct {
	// Principal may be omitted when the caller is a user of the tenant: it
	// is then that user (type Store.PrincipalType), whose parents are the
	// token's groups (type Store.GroupType).
	Principal *EntityRef `json:"principal,omitempty"`
	Action    *EntityRef `json:"action"`
	Resource  *EntityRef `json:"resource"`
	// Context is a JSON object (Cedar's JSON value format).
	Context json.RawMessage `json:"context,omitempty"`
	// Entities are in Cedar's JSON entity format.
	Entities json.RawMessage `json:"entities,omitempty"`
}

// Caller is a user of the tenant making a request.
type Caller struct {
	UserID string
	Groups []string
}

// Asker is who asks for a decision.
type Asker struct {
	Actor tenant.Actor
	// User, when set, is the tenant's user asking: the default principal.
	User *Caller
	// Operator marks the platform operator querying a tenant's store; all
	// of its decisions are audited, allows too.
	Operator bool
	// Partner, when set, is a partner's session asking about itself
	// (see PartnerType).
	Partner *Partner
}

// Decision is the answer to a Request.
type Decision = api.Decision

// DecisionError is a policy that failed to evaluate (and so was skipped).
type DecisionError = api.DecisionError

// Decisions.
const (
	Allow = "allow"
	Deny  = "deny"
)

// globalPrefix marks global policies in an effective set.
const globalPrefix = "global/"

// effective is a tenant's compiled effective policy set.
type effective struct {
	policies  *cedar.PolicySet
	validator *validate.Validator
	store     Store
}

// globals is the compiled global set, shared by every tenant's.
type globals struct {
	policies []namedAST
}

// Authorize decides one request for tenant tid.
func (s *Service) Authorize(ctx context.Context, tid tenant.ID, req Request, who Asker) (Decision, error) {
	eff, err := s.effective(ctx, tid)
	if err != nil {
		return Decision{}, err
	}
	ses, err := s.session(who.Partner)
	if err != nil {
		return Decision{}, err
	}
	d, err := eff.decide("", req, who.User, ses)
	if err != nil {
		return Decision{}, err
	}
	s.logDecision(ctx, tid, eff, req, who, d)
	return d, nil
}

// AuthorizeBatch decides up to MaxBatch requests for tenant tid, in order.
// A malformed request fails the whole batch (its index is in the error's field).
func (s *Service) AuthorizeBatch(ctx context.Context, tid tenant.ID, reqs []Request, who Asker) ([]Decision, error) {
	if len(reqs) == 0 || len(reqs) > MaxBatch {
		return nil, errs.Field("requests", "invalid_batch", "a batch holds 1 to %d requests", MaxBatch)
	}
	eff, err := s.effective(ctx, tid)
	if err != nil {
		return nil, err
	}
	ses, err := s.session(who.Partner)
	if err != nil {
		return nil, err
	}
	out := make([]Decision, len(reqs))
	for i, r := range reqs {
		if out[i], err = eff.decide(fmt.Sprintf("requests[%d].", i), r, who.User, ses); err != nil {
			return nil, err
		}
	}
	s.logBatch(ctx, tid, eff, reqs, who, out)
	return out, nil
}

// logDecision audits denies, allows when the store asks for it, and every
// decision the operator asks for.
func (s *Service) logDecision(ctx context.Context, tid tenant.ID, eff *effective, req Request, who Asker, d Decision) {
	if !logged(eff, who, d) {
		return
	}
	detail := decisionFields(eff, req, who, d)
	s.enqueue(ctx, tid, audit.Event{TenantID: string(tid), Principal: who.Actor.Principal, Action: "authz.decision",
		Target: errs.Clip(req.Resource.UID().String(), 300), Outcome: outcome(d.Decision == Deny), RequestID: who.Actor.RequestID,
		SourceIP: who.Actor.SourceIP, Detail: detail})
}

// logBatch audits a batch as one event, authz.batch_decision, that lists
// the decisions logDecision would have logged one by one (in detail
// "decisions", a JSON array, clipped at maxBatchDetail), as a cloud
// provider's trail records one event per API call. One event, not up to
// MaxBatch: a tenant flooding batches of denials made the node hash and
// write 20,000 events a second for it, and that work, done by the one
// audit writer on behalf of one tenant, took the cores from the others.
func (s *Service) logBatch(ctx context.Context, tid tenant.ID, eff *effective, reqs []Request, who Asker, ds []Decision) {
	type entry struct {
		Index int `json:"index"`
		decisionDetail
	}
	var entries []entry
	denied := 0
	for i, d := range ds {
		if !logged(eff, who, d) {
			continue
		}
		if d.Decision == Deny {
			denied++
		}
		entries = append(entries, entry{Index: i, decisionDetail: decisionDetailOf(eff, reqs[i], who, d)})
	}
	if len(entries) == 0 {
		return
	}
	list, _ := json.Marshal(entries)
	s.enqueue(ctx, tid, audit.Event{TenantID: string(tid), Principal: who.Actor.Principal, Action: "authz.batch_decision",
		Target: "batch", Outcome: outcome(denied > 0), RequestID: who.Actor.RequestID, SourceIP: who.Actor.SourceIP,
		Detail: map[string]string{
			"requests":  strconv.Itoa(len(reqs)),
			"denied":    strconv.Itoa(denied),
			"logged":    strconv.Itoa(len(entries)),
			"decisions": errs.Clip(string(list), maxBatchDetail),
		}})
}

// maxBatchDetail bounds the decision list of a batch's audit event.
const maxBatchDetail = 32 << 10

func logged(eff *effective, who Asker, d Decision) bool {
	return d.Decision == Deny || eff.store.LogAllows || who.Operator
}

func outcome(denied bool) audit.Outcome {
	if denied {
		return audit.Denied
	}
	return audit.Success
}

// decisionDetail is what the decision log says of one decision.
type decisionDetail struct {
	Decision            string `json:"decision"`
	Principal           string `json:"principal"`
	Action              string `json:"action"`
	Resource            string `json:"resource"`
	DeterminingPolicies string `json:"determining_policies,omitempty"`
}

func decisionDetailOf(eff *effective, req Request, who Asker, d Decision) decisionDetail {
	principal := "(caller)"
	if who.Partner != nil {
		principal = types.NewEntityUID(PartnerType, types.String(who.Partner.ID)).String()
	} else if req.Principal != nil {
		principal = req.Principal.UID().String()
	} else if who.User != nil {
		principal = types.NewEntityUID(types.EntityType(eff.store.PrincipalType), types.String(who.User.UserID)).String()
	}
	return decisionDetail{
		Decision:            d.Decision,
		Principal:           errs.Clip(principal, 300),
		Action:              errs.Clip(req.Action.UID().String(), 300),
		Resource:            errs.Clip(req.Resource.UID().String(), 300),
		DeterminingPolicies: errs.Clip(strings.Join(d.DeterminingPolicies, ","), 1000),
	}
}

func decisionFields(eff *effective, req Request, who Asker, d Decision) map[string]string {
	dd := decisionDetailOf(eff, req, who, d)
	m := map[string]string{"decision": dd.Decision, "principal": dd.Principal, "action": dd.Action, "resource": dd.Resource}
	if dd.DeterminingPolicies != "" {
		m["determining_policies"] = dd.DeterminingPolicies
	}
	return m
}

// enqueue hands a decision record to the audit log's group commit. A
// decision does not wait for a disk flush.
func (s *Service) enqueue(ctx context.Context, tid tenant.ID, ev audit.Event) {
	if err := s.audit.Enqueue(context.WithoutCancel(ctx), ev); err != nil {
		s.log.ErrorContext(ctx, "authz: decision log append failed", "err", err, "tenant", tid)
	}
}

// decide evaluates one request against the effective set. field prefixes
// the names of offending fields.
func (e *effective) decide(field string, req Request, caller *Caller, ses *session) (Decision, error) {
	if ses != nil {
		if req.Principal != nil && req.Principal.UID() != ses.uid {
			return Decision{}, errs.Field(field+"principal", "principal_not_allowed",
				"a partner's session asks about itself: leave principal out (it is %s)", ses.uid)
		}
		caller = nil
	}
	if req.Principal == nil && caller == nil && ses == nil {
		return Decision{}, errs.Field(field+"principal", "missing_entity",
			"principal is required (it defaults to the caller only for a user's token of this tenant)")
	}
	for _, f := range []struct {
		name     string
		ref      *EntityRef
		optional bool
	}{{"principal", req.Principal, true}, {"action", req.Action, false}, {"resource", req.Resource, false}} {
		if err := f.ref.check(field+f.name, f.optional); err != nil {
			return Decision{}, err
		}
	}
	entities, err := parseEntities(field+"entities", req.Entities)
	if err != nil {
		return Decision{}, err
	}
	var principal types.EntityUID
	switch {
	case ses != nil:
		if e.validator != nil {
			// The request's own entities conform to the schema; the
			// session's entity is Bulkhead's, outside it.
			if err := e.validator.Entities(entities); err != nil {
				return Decision{}, errs.Field(field+"entities", "entities_schema_violation", "%s", err.Error())
			}
		}
		principal = ses.uid
		entities[principal] = ses.entity
	case req.Principal != nil:
		principal = req.Principal.UID()
	default:
		principal = types.NewEntityUID(types.EntityType(e.store.PrincipalType), types.String(caller.UserID))
		// The token's groups are the caller's parents, whatever the request says.
		ent := entities[principal]
		ent.UID = principal
		ent.Parents = types.NewEntityUIDSet()
		var parents []types.EntityUID
		for _, g := range caller.Groups {
			parents = append(parents, types.NewEntityUID(types.EntityType(e.store.GroupType), types.String(g)))
		}
		ent.Parents = types.NewEntityUIDSet(parents...)
		if ent.Attributes.Len() == 0 {
			ent.Attributes = types.Record{}
		}
		entities[principal] = ent
	}
	ctxRec, err := parseContext(field+"context", req.Context)
	if err != nil {
		return Decision{}, err
	}
	creq := cedar.Request{Principal: principal, Action: req.Action.UID(), Resource: req.Resource.UID(), Context: ctxRec}
	if e.validator != nil && ses == nil {
		if err := e.validator.Entities(entities); err != nil {
			return Decision{}, errs.Field(field+"entities", "entities_schema_violation", "%s", err.Error())
		}
		if err := e.validator.Request(creq); err != nil {
			return Decision{}, errs.Field(field+"request", "request_schema_violation", "%s", err.Error())
		}
	}
	dec, diag := cedar.Authorize(e.policies, entities, creq)
	out := Decision{Decision: Deny, DeterminingPolicies: []string{}, Errors: []DecisionError{}}
	if dec == cedar.Allow {
		out.Decision = Allow
	}
	for _, r := range diag.Reasons {
		out.DeterminingPolicies = append(out.DeterminingPolicies, string(r.PolicyID))
	}
	for _, de := range diag.Errors {
		id, msg := string(de.PolicyID), de.Message
		if strings.HasPrefix(id, globalPrefix) {
			// A tenant sees a global policy's effect, not its text.
			msg = "a global policy could not be evaluated on this request"
			// Global forbids are the platform's guardrails: one that cannot
			// be evaluated (an attribute left out of the entities, say)
			// denies rather than being skipped.
			if p := e.policies.Get(de.PolicyID); p != nil && p.Effect() == cedar.Forbid {
				if out.Decision == Allow {
					out.Decision, out.DeterminingPolicies = Deny, nil
				}
				out.DeterminingPolicies = append(out.DeterminingPolicies, id)
			}
		}
		out.Errors = append(out.Errors, DecisionError{Policy: id, Message: msg})
	}
	ses.applyBound(&out, entities, creq)
	if out.DeterminingPolicies == nil {
		out.DeterminingPolicies = []string{}
	}
	return out, nil
}

// parseEntities reads Cedar's JSON entity format, refusing parent cycles.
func parseEntities(field string, raw json.RawMessage) (types.EntityMap, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return types.EntityMap{}, nil
	}
	if raw[0] != '[' {
		return nil, errs.Field(field, "invalid_entities", "entities is an array in Cedar's JSON entity format")
	}
	em, err := decodeEntities(raw)
	if err != nil {
		return nil, errs.Field(field, "invalid_entities", "entities are not in Cedar's JSON entity format: %s", errs.Clip(err.Error(), 300))
	}
	if len(em) > MaxEntities {
		return nil, errs.Field(field, "invalid_entities", "at most %d entities per request", MaxEntities)
	}
	for uid := range em {
		if err := (&EntityRef{Type: string(uid.Type), ID: string(uid.ID)}).check(field, false); err != nil {
			return nil, err
		}
	}
	if uid, ok := findCycle(em); ok {
		return nil, errs.Field(field, "entities_cycle", "entity %s is its own ancestor: the parent graph must have no cycles", errs.Clip(uid.String(), 200))
	}
	return em, nil
}

// findCycle reports an entity on a cycle of the parent graph, if any
// (iterative three-colour depth-first search).
func findCycle(em types.EntityMap) (types.EntityUID, bool) {
	const (
		white = iota
		grey
		black
	)
	colour := make(map[types.EntityUID]int, len(em))
	type frame struct {
		uid     types.EntityUID
		parents []types.EntityUID
	}
	for start := range em {
		if colour[start] != white {
			continue
		}
		stack := []frame{{start, em[start].Parents.Slice()}}
		colour[start] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if len(top.parents) == 0 {
				colour[top.uid] = black
				stack = stack[:len(stack)-1]
				continue
			}
			p := top.parents[0]
			top.parents = top.parents[1:]
			switch colour[p] {
			case grey:
				return p, true
			case white:
				colour[p] = grey
				var next []types.EntityUID
				if ent, ok := em[p]; ok {
					next = ent.Parents.Slice()
				}
				stack = append(stack, frame{p, next})
			}
		}
	}
	return types.EntityUID{}, false
}

// parseContext reads the request context, a JSON object.
func parseContext(field string, raw json.RawMessage) (types.Record, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return types.Record{}, nil
	}
	if raw[0] != '{' {
		return types.Record{}, errs.Field(field, "invalid_context", "context is a JSON object")
	}
	if depth(raw) > maxContextNesting {
		return types.Record{}, errs.Field(field, "invalid_context", "context nests more than %d deep", maxContextNesting)
	}
	rec, err := decodeRecordJSON(raw)
	if err != nil {
		return types.Record{}, errs.Field(field, "invalid_context", "context is not a Cedar record: %s", errs.Clip(err.Error(), 300))
	}
	return rec, nil
}

// depth is the nesting depth of a JSON value (brackets outside strings).
func depth(raw []byte) int {
	d, deepest, inString := 0, 0, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}

// effective returns tenant tid's compiled effective set, from the cache or
// built from the database.
func (s *Service) effective(ctx context.Context, tid tenant.ID) (*effective, error) {
	if e, ok := s.cache.sets.Get(tid); ok {
		return e, nil
	}
	// Concurrent misses of one tenant share one load.
	v, err, _ := s.loads.Do(string(tid), func() (any, error) { return s.loadEffective(ctx, tid) })
	if err != nil {
		return nil, err
	}
	return v.(*effective), nil
}

// loadEffective reads and compiles tenant tid's effective set and caches it.
func (s *Service) loadEffective(ctx context.Context, tid tenant.ID) (*effective, error) {
	gen := s.cache.sets.Generation()
	g, err := s.globals(ctx)
	if err != nil {
		return nil, err
	}
	var eff *effective
	err = s.view(ctx, tid, func(tx *storage.Tx, st storeRow) error {
		c, err := load(ctx, tx, st, true)
		if err != nil {
			return err
		}
		ps := cedar.NewPolicySet()
		for _, p := range g.policies {
			ps.Add(cedar.PolicyID(globalPrefix+p.id), compile(p.ast))
		}
		for _, p := range c.statics {
			ps.Add(cedar.PolicyID(p.id), compile(p.ast))
		}
		for _, l := range c.links {
			p, err := c.linked(l)
			if err != nil {
				return unreadable("linked policy "+l.id, err)
			}
			ps.Add(cedar.PolicyID(l.id), compile(p))
		}
		eff = &effective{policies: ps, validator: c.validator, store: st.Store}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cache.sets.Put(tid, eff, gen)
	return eff, nil
}

// globals returns the parsed global policies, cached under the key "".
func (s *Service) globals(ctx context.Context) (*globals, error) {
	if e, ok := s.cache.globals.Get(struct{}{}); ok {
		return e, nil
	}
	gen := s.cache.globals.Generation()
	var g globals
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		c, err := load(ctx, tx, storeRow{}, true)
		if err != nil {
			return err
		}
		g.policies = c.statics
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cache.globals.Put(struct{}{}, &g, gen)
	return &g, nil
}
