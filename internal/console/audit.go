package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// auditView is a page of the audit timeline with its filters, and what
// is known of the chain's verification.
type auditView struct {
	Items                []api.AuditEvent
	NextURL              string
	Tenant, Action       string
	Since, Until         string // dates (YYYY-MM-DD), as the form has them
	Scope                string // "" for all of the platform's chains (operator), else the tenant
	Verify               *api.VerifyReport
	ChainFindings        []api.PostureFinding
	ScannedAt            time.Time
	VerifyURL, FilterURL string
	Names                map[string]string // principal → the person's email, where known
}

// maxNameLookups bounds the users looked up for one page of the timeline.
const maxNameLookups = 10

// principalNames finds the emails of the people a page of events names:
// for an operator, operators by one list (nobody else may read it: a
// tenant admin's refused call would only add a denied event), and
// up to maxNameLookups tenant users one by one. What cannot be read (a
// deleted user, another tenant's, a tenant admin asking for operators)
// stays an id.
func principalNames(ctx context.Context, cl *client.Client, operator bool, events []api.AuditEvent) map[string]string {
	names := map[string]string{}
	operators, lookups := false, 0
	for _, ev := range events {
		kind, id, _ := strings.Cut(ev.Principal, ":")
		if _, done := names[ev.Principal]; done {
			continue
		}
		switch {
		case kind == "operator" && strings.HasPrefix(id, "opr_") && operator && !operators:
			operators = true
			if ops, err := cl.ListOperators(ctx); err == nil {
				for _, o := range ops {
					names["operator:"+o.ID] = o.Email
				}
			}
		case kind == "user" && ev.TenantID != "" && lookups < maxNameLookups:
			lookups++
			names[ev.Principal] = ""
			if u, err := cl.GetUser(ctx, ev.TenantID, id); err == nil {
				names[ev.Principal] = u.Email
			}
		}
	}
	return names
}

const auditPerPage = 50

// auditQuery reads the timeline's filters from the request; a bad date
// is an error message for the form.
func auditQuery(r *http.Request) (client.AuditQuery, auditView, string) {
	q := r.URL.Query()
	v := auditView{Action: strings.TrimSpace(q.Get("action")), Since: q.Get("since"), Until: q.Get("until"), Tenant: strings.TrimSpace(q.Get("tenant"))}
	out := client.AuditQuery{Action: v.Action, Limit: auditPerPage, Cursor: q.Get("cursor"), Tenant: v.Tenant}
	for _, d := range []struct {
		text string
		into *time.Time
		end  bool
	}{{v.Since, &out.Since, false}, {v.Until, &out.Until, true}} {
		if d.text == "" {
			continue
		}
		t, err := time.Parse("2006-01-02", d.text)
		if err != nil {
			return out, v, "Dates are written YYYY-MM-DD, such as 2026-12-01."
		}
		if d.end {
			t = t.Add(24*time.Hour - time.Microsecond) // the whole day
		}
		*d.into = t
	}
	return out, v, ""
}

// nextAuditURL is the link to the page after page, with the same filters.
func nextAuditURL(base string, v auditView, next string) string {
	if next == "" {
		return ""
	}
	q := url.Values{"cursor": {next}}
	for k, val := range map[string]string{"action": v.Action, "since": v.Since, "until": v.Until, "tenant": v.Tenant} {
		if val != "" {
			q.Set(k, val)
		}
	}
	return base + "?" + q.Encode()
}

// platformAudit is the operator's timeline of every chain.
func (c *Console) platformAudit(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	q, v, bad := auditQuery(r)
	v.VerifyURL, v.FilterURL = c.prefix+"/audit/verify", c.prefix+"/audit"
	return c.auditPage(r, cl, s.Operator(), q, v, bad, "Audit trail", "", func(q client.AuditQuery) (api.AuditPage, error) {
		return cl.ListAudit(r.Context(), q)
	}, func() (api.PosturePage, error) { return cl.ListPosture(r.Context(), client.PostureQuery{Tenant: "-"}) })
}

// tenantAudit is one tenant's chain.
func (c *Console) tenantAudit(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	q, v, bad := auditQuery(r)
	q.Tenant, v.Tenant, v.Scope = "", "", id
	v.FilterURL = c.prefix + "/tenants/" + url.PathEscape(id) + "/audit"
	return c.auditPage(r, cl, s.Operator(), q, v, bad, "Audit trail of "+id, id, func(q client.AuditQuery) (api.AuditPage, error) {
		return cl.ListTenantAudit(r.Context(), id, q)
	}, func() (api.PosturePage, error) { return cl.ListTenantPosture(r.Context(), id, client.PostureQuery{}) })
}

func (c *Console) auditPage(r *http.Request, cl *client.Client, operator bool, q client.AuditQuery, v auditView, bad, title, tid string,
	list func(client.AuditQuery) (api.AuditPage, error), posture func() (api.PosturePage, error)) (string, view, error) {
	nav := "audit"
	if tid != "" {
		nav = "taudit"
	}
	if bad != "" {
		return "audit", view{Title: title, Nav: nav, Tenant: tid, Data: v, Status: http.StatusBadRequest, Error: bad}, nil
	}
	page, err := list(q)
	if err != nil {
		return "", view{}, err
	}
	v.Items, v.NextURL = page.Items, nextAuditURL(v.FilterURL, v, page.NextCursor)
	v.Names = principalNames(r.Context(), cl, operator, page.Items)
	// The chain's status, from the last posture scan (it verifies every
	// chain): its open audit_chain_broken findings.
	if pp, err := posture(); err == nil {
		v.ScannedAt = pp.ScannedAt
		for _, f := range pp.Items {
			if f.Check == "audit_chain_broken" {
				v.ChainFindings = append(v.ChainFindings, f)
			}
		}
	}
	return "audit", view{Title: title, Nav: nav, Tenant: tid, Data: v, Notice: noticeOf(r)}, nil
}

// auditVerify verifies every chain now (operator) and shows the report.
func (c *Console) auditVerify(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	rep, err := cl.VerifyAudit(r.Context())
	if err != nil {
		return "", view{}, err
	}
	r.URL.RawQuery = ""
	name, v, err := c.platformAudit(w, r, s, cl)
	if err == nil {
		av := v.Data.(auditView)
		av.Verify = &rep
		v.Data = av
	}
	return name, v, err
}
