package authz

import (
	"context"

	"github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/bulkhead-dev/bulkhead/internal/posture"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// PostureChecks are the policy stores' posture checks.
func (s *Service) PostureChecks() []posture.Check {
	const (
		why = "A policy that permits every principal every action on every resource, with no condition, makes every other " +
			"permit moot: any authenticated caller the application asks about is allowed everything"
		fix = "Scope the policy (principal in a group, the actions it is for, a resource type) or add a when condition; " +
			"keep a broad grant for admins as permit(principal in Group::\"admins\", action, resource)."
	)
	return []posture.Check{{
		Code: "policy_permits_everything", Severity: api.SeverityHigh,
		Title: "A tenant policy permits every action on every resource to anyone",
		Why:   why + ", in the tenant.", Fix: fix,
		Tenant: func(ctx context.Context, tid tenant.ID) ([]posture.Hit, error) { return s.permitsEverything(ctx, tid) },
	}, {
		Code: "global_policy_permits_everything", Severity: api.SeverityCritical,
		Title: "A global policy permits every action on every resource to anyone",
		Why:   why + ", in every tenant (global policies join every tenant's set).", Fix: fix,
		Platform: func(ctx context.Context) ([]posture.Hit, error) { return s.permitsEverything(ctx, "") },
	}}
}

// permitsEverything finds the static policies of tenant tid's store (of
// the global set when tid is "") that are permit(principal, action,
// resource) without conditions.
func (s *Service) permitsEverything(ctx context.Context, tid tenant.ID) ([]posture.Hit, error) {
	var hits []posture.Hit
	err := s.view(ctx, tid, func(tx *storage.Tx, st storeRow) error {
		c, err := load(ctx, tx, st, true)
		if err != nil {
			return err
		}
		for _, p := range c.statics {
			if permitsEverything(p.ast) {
				hits = append(hits, posture.Hit{Object: "policy:" + p.id, Detail: render(p.ast)})
			}
		}
		return nil
	})
	return hits, err
}

func permitsEverything(p *ast.Policy) bool {
	_, anyPrincipal := p.Principal.(ast.ScopeTypeAll)
	_, anyAction := p.Action.(ast.ScopeTypeAll)
	_, anyResource := p.Resource.(ast.ScopeTypeAll)
	return p.Effect == ast.EffectPermit && anyPrincipal && anyAction && anyResource && len(p.Conditions) == 0
}
