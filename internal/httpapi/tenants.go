package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

func pathTenant(r *http.Request) (tenant.ID, error) {
	return tenants.ParseID(r.PathValue("tenant"))
}

// existingTenant returns the {tenant} of the path if that tenant exists
// (tenant_not_found otherwise), for reads that would else answer an empty list.
func (s *Server) existingTenant(r *http.Request) (tenant.ID, error) {
	id, err := pathTenant(r)
	if err != nil {
		return "", err
	}
	if _, err := s.Tenants.Get(r.Context(), id); err != nil {
		return "", err
	}
	return id, nil
}

func queryLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, errs.Field("limit", "invalid_limit", "limit must be an integer between 1 and 1000")
	}
	return n, nil
}

func (s *Server) listTiers(w http.ResponseWriter, r *http.Request) error {
	tiers := make([]api.Tier, 0, len(s.Tenants.Tiers()))
	for _, t := range s.Tenants.Tiers() {
		tiers = append(tiers, wireTier(t))
	}
	slices.SortFunc(tiers, func(a, b api.Tier) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, api.List[api.Tier]{Items: tiers})
	return nil
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) error {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return errs.Field("Idempotency-Key", "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters")
	}
	// The body is the tenant's fields plus the optional first admin.
	var body api.CreateTenant
	if err := decode(w, r, &body); err != nil {
		return err
	}
	req := tenants.CreateRequest{ID: body.ID, Name: body.Name, Tier: body.Tier, Domains: body.Domains, Config: body.Config}
	var temporary string
	if body.AdminEmail != "" {
		var err error
		if req.Input, temporary, err = s.Directory.PrepareInitialAdmin(r.Context(), body.AdminEmail); err != nil {
			return err
		}
	}
	t, created, err := s.Tenants.Create(r.Context(), req, key, actor(r))
	if err != nil {
		return err
	}
	if t.Status == tenants.Provisioning {
		// Onboarding is still running: the retry of a create that a crash
		// cut off (resumed by a restarted node), a workflow another node
		// runs, or a step that failed and is retried. The answer waits for
		// it, up to a bound, so that it is the tenant active, as the first
		// answer would have been; past the bound, 202 says to poll.
		wait, cancel := context.WithTimeout(r.Context(), s.OnboardingWait)
		t, err = s.Tenants.AwaitOnboarding(wait, t.ID)
		cancel()
		if err != nil {
			return err
		}
	}
	status := http.StatusCreated
	if t.Status == tenants.Provisioning {
		status = http.StatusAccepted
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Location", "/v1/tenants/"+string(t.ID))
	resp := wireTenant(t)
	if created && temporary != "" {
		// Only the request that created the tenant knows the password; a
		// replay with the same Idempotency-Key does not show one.
		resp.InitialAdmin = &api.InitialAdmin{Email: body.AdminEmail, TemporaryPassword: temporary}
		w.Header().Set("Cache-Control", "no-store")
	}
	writeJSON(w, status, resp)
	return nil
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	page, err := s.Tenants.ListAllTenants(r.Context(), tenants.ListOptions{Limit: limit, Cursor: q.Get("cursor"), Status: tenants.Status(q.Get("status")),
		Tier: q.Get("tier"), Query: q.Get("q")})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireTenantPage(page))
	return nil
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	t, err := s.Tenants.Get(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireTenant(t))
	return nil
}

func (s *Server) updateTenant(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	var p api.PatchTenant
	if err := decode(w, r, &p); err != nil {
		return err
	}
	t, err := s.Tenants.Update(r.Context(), id, tenants.Patch(p), actor(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireTenant(t))
	return nil
}

func (s *Server) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	t, err := s.Tenants.Delete(r.Context(), id, actor(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, wireTenant(t))
	return nil
}

func (s *Server) suspendTenant(w http.ResponseWriter, r *http.Request) error {
	return s.transition(w, r, s.Tenants.Suspend)
}

func (s *Server) resumeTenant(w http.ResponseWriter, r *http.Request) error {
	return s.transition(w, r, s.Tenants.Resume)
}

func (s *Server) transition(w http.ResponseWriter, r *http.Request,
	fn func(ctx context.Context, id tenant.ID, a tenant.Actor) (tenants.Tenant, error)) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	t, err := fn(r.Context(), id, actor(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireTenant(t))
	return nil
}

func (s *Server) tenantWorkflows(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	wfs, err := s.Tenants.Workflows(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.List[api.Workflow]{Items: each(wfs, wireWorkflow)})
	return nil
}
