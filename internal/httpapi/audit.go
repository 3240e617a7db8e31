package httpapi

import (
	"net/http"
	"regexp"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

var actionPattern = regexp.MustCompile(`^[a-z0-9_.-]{1,100}$`)

func auditFilter(r *http.Request) (audit.Filter, error) {
	q := r.URL.Query()
	limit, err := queryLimit(r)
	if err != nil {
		return audit.Filter{}, err
	}
	f := audit.Filter{Action: q.Get("action"), Limit: limit, Cursor: q.Get("cursor")}
	if f.Action != "" && !actionPattern.MatchString(f.Action) {
		return audit.Filter{}, errs.Field("action", "invalid_action", "action must be a dotted name such as tenant.updated")
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return audit.Filter{}, errs.Field(p.name, "invalid_time", "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", p.name)
			}
			*p.dst = t
		}
	}
	f.Tenant = q.Get("tenant")
	if f.Tenant != "" && f.Tenant != audit.PlatformChain {
		if _, err := tenant.ParseID(f.Tenant); err != nil {
			return audit.Filter{}, errs.Field("tenant", "invalid_tenant_id", "tenant must be a tenant id, or %q for platform events", audit.PlatformChain)
		}
	}
	return f, nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	page, err := s.Audit.ListAllTenants(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireAuditPage(page))
	return nil
}

func (s *Server) listTenantAudit(w http.ResponseWriter, r *http.Request) error {
	id, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	page, err := s.Audit.ListTenant(r.Context(), storage.TenantScope(id), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireAuditPage(page))
	return nil
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	ids, err := s.Tenants.ListAllTenantIDs(r.Context())
	if err != nil {
		return err
	}
	chains := make([]string, len(ids))
	for i, id := range ids {
		chains[i] = string(id)
	}
	rep, err := s.Audit.VerifyAllTenants(r.Context(), chains...)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
