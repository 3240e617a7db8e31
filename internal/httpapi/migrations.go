package httpapi

import (
	"context"
	"net/http"
	"slices"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// migrationRoutes start and report tier migrations (the operator's).
func (s *Server) migrationRoutes() []Route {
	start := jsonCall(http.StatusAccepted, pathTenant, func(r *http.Request, tid tenant.ID, in api.StartTenantMigration) (api.TenantMigration, error) {
		m, err := s.Tenants.StartMigration(r.Context(), tid, in.TargetTier, actor(r))
		if err != nil {
			return api.TenantMigration{}, err
		}
		return s.wireMigration(r.Context(), m)
	})
	list := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.List[api.TenantMigration], error) {
		ms, err := s.Tenants.Migrations(r.Context(), tid)
		if err != nil {
			return api.List[api.TenantMigration]{}, err
		}
		out := api.List[api.TenantMigration]{Items: make([]api.TenantMigration, 0, len(ms))}
		for _, m := range ms {
			w, err := s.wireMigration(r.Context(), m)
			if err != nil {
				return out, err
			}
			out.Items = append(out.Items, w)
		}
		return out, nil
	})
	get := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.TenantMigration, error) {
		m, err := s.Tenants.GetMigration(r.Context(), tid, r.PathValue("migration"))
		if err != nil {
			return api.TenantMigration{}, err
		}
		return s.wireMigration(r.Context(), m)
	})
	return []Route{
		{"POST", "/v1/tenants/{tenant}/migrations", "tenant.migration_start", Operator, start},
		{"GET", "/v1/tenants/{tenant}/migrations", "tenant.migration_list", Operator, list},
		{"GET", "/v1/tenants/{tenant}/migrations/{migration}", "tenant.migration_get", Operator, get},
	}
}

// wireMigration is a migration with the step it is at and its data move.
func (s *Server) wireMigration(ctx context.Context, m tenants.MigrationInfo) (api.TenantMigration, error) {
	wf := wireWorkflow(m.Workflow)
	out := api.TenantMigration{ID: wf.ID, TenantID: wf.TenantID, FromTier: m.FromTier, ToTier: m.ToTier,
		FromIsolation: string(m.From), ToIsolation: string(m.To), Status: wf.Status, Steps: wf.Steps,
		Attempts: wf.Attempts, LastError: wf.LastError, CreatedAt: wf.CreatedAt, UpdatedAt: wf.UpdatedAt}
	if m.Status == tenants.WorkflowRunning {
		for _, name := range s.Tenants.StepNames(tenants.KindMigration) {
			if !slices.ContainsFunc(m.Steps, func(st tenants.StepRecord) bool { return st.Name == name }) {
				out.Step = name
				break
			}
		}
	}
	if s.Data != nil {
		p, ok, err := s.Data.MoveProgress(ctx, m.TenantID, m.ID)
		if err != nil {
			return out, err
		}
		if ok {
			out.Data = &p
		}
	}
	return out, nil
}
