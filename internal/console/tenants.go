package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// home sends an operator to the tenants and a tenant admin to their tenant.
func (c *Console) home(w http.ResponseWriter, r *http.Request, s *session, _ *client.Client) (string, view, error) {
	switch {
	case s.Operator():
		http.Redirect(w, r, c.prefix+"/tenants", http.StatusFound)
	case s.Member():
		http.Redirect(w, r, c.prefix+"/account", http.StatusFound)
	default:
		http.Redirect(w, r, c.prefix+"/tenants/"+string(s.TenantID), http.StatusFound)
	}
	return "", view{}, nil
}

// tenantsView is the tenant list: one page of the API's, with the filters.
type tenantsView struct {
	Items              []api.Tenant
	Status, Tier, Q    string
	Next, Cursor       string
	Tiers              []api.Tier
	Statuses           []string
	NewID, NewName     string
	NewTier, NewAdmin  string
	NextURL, FirstPage string
}

const tenantsPerPage = 50

func (c *Console) tenantList(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	q := r.URL.Query()
	v := tenantsView{Status: q.Get("status"), Tier: q.Get("tier"), Q: strings.TrimSpace(q.Get("q")), Cursor: q.Get("cursor"),
		Statuses: []string{"active", "provisioning", "suspended", "offboarding", "deleted"}}
	tiers, err := cl.ListTiers(r.Context())
	if err != nil {
		return "", view{}, err
	}
	v.Tiers = tiers
	page, err := c.listTenants(r, cl, v)
	if err != nil {
		return "", view{}, err
	}
	v.Items, v.Next = page.Items, page.NextCursor
	if v.Next != "" {
		nq := url.Values{"cursor": {v.Next}}
		for k, val := range map[string]string{"status": v.Status, "tier": v.Tier, "q": v.Q} {
			if val != "" {
				nq.Set(k, val)
			}
		}
		v.NextURL = c.prefix + "/tenants?" + nq.Encode()
	}
	return "tenants", view{Title: "Tenants", Nav: "tenants", Data: v, Notice: noticeOf(r)}, nil
}

func (c *Console) listTenants(r *http.Request, cl *client.Client, v tenantsView) (api.TenantPage, error) {
	q := url.Values{"limit": {strconv.Itoa(tenantsPerPage)}}
	for k, val := range map[string]string{"status": v.Status, "tier": v.Tier, "q": v.Q, "cursor": v.Cursor} {
		if val != "" {
			q.Set(k, val)
		}
	}
	var page api.TenantPage
	err := cl.Do(r.Context(), http.MethodGet, "/v1/tenants?"+q.Encode(), nil, nil, &page)
	return page, err
}

func (c *Console) tenantCreate(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	in := api.CreateTenant{ID: strings.TrimSpace(r.PostForm.Get("id")), Name: strings.TrimSpace(r.PostForm.Get("name")),
		Tier: r.PostForm.Get("tier"), AdminEmail: strings.TrimSpace(r.PostForm.Get("admin_email"))}
	t, err := cl.CreateTenant(r.Context(), in, "")
	if err != nil {
		if p := refusal(err); p != nil {
			// Show the form again with what was typed and what to fix.
			v := tenantsView{NewID: in.ID, NewName: in.Name, NewTier: in.Tier, NewAdmin: in.AdminEmail,
				Statuses: []string{"active", "provisioning", "suspended", "offboarding", "deleted"}}
			v.Tiers, _ = cl.ListTiers(r.Context())
			if page, err := c.listTenants(r, cl, tenantsView{}); err == nil {
				v.Items, v.Next = page.Items, page.NextCursor
			}
			return "tenants", view{Title: "Tenants", Nav: "tenants", Data: v, Status: p.Status, Error: problemMessage(p)}, nil
		}
		return "", view{}, err
	}
	return c.seeOther(w, r, "/tenants/"+url.PathEscape(t.ID)+"?notice=created")
}

// noticeOf turns a redirect's notice into a message (only known ones:
// nothing a link's author wrote is shown).
func noticeOf(r *http.Request) string {
	return map[string]string{
		"created":         "Tenant created.",
		"suspended":       "Tenant suspended: its tokens stop working and its users cannot sign in.",
		"resumed":         "Tenant resumed.",
		"deleted":         "Offboarding started: the tenant's data is being removed.",
		"user":            "User added. Give them their temporary password; they choose their own at first sign-in.",
		"scanned":         "Scan finished.",
		"policy":          "Policy saved. Decisions use it from now on.",
		"policy_deleted":  "Policy deleted.",
		"key_created":     "Key created.",
		"client_deleted":  "Client deleted: its tokens no longer work.",
		"group":           "Group created.",
		"session_ended":   "Session ended: its applications were told, and its refresh tokens no longer work.",
		"totp":            "Your authenticator app is on: sign-ins ask for its code from now on.",
		"grant_suspended": "Grant suspended: its Part A is refused at the proxy from now on.",
		"grant_resumed":   "Grant resumed.",
		"member":          "Member added: their next token carries the group.",
		"branding":        "Saved. Your users see it on the sign-in page of your applications.",
		"key_rotated":     "Key rotated: new data is encrypted under its new version; older versions still decrypt.",
		"key_kept":        "Deletion cancelled: the key is enabled again.",
		"key_deletion":    "Deletion scheduled. The key no longer encrypts or decrypts.",
		"tier":            "Tier changed: its rates and limits apply from now on.",
		"migration":       "Tier migration started: the tenant keeps serving while its data and issuer move. Its progress shows below.",
	}[r.URL.Query().Get("notice")]
}

// tenantView is a tenant's page. Operators see its workflows (onboarding,
// offboarding), its tier migrations with their progress, and the tiers it
// may move to.
type tenantView struct {
	T          api.Tenant
	Workflows  []api.Workflow
	Migrations []api.TenantMigration
	Tiers      []api.Tier // the other tiers
}

// tenantRecord is the {tenant} of a tenant page and its record, as the
// person's token reads it.
func (c *Console) tenantRecord(r *http.Request, s *session, cl *client.Client) (string, api.Tenant, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", api.Tenant{}, err
	}
	t, err := cl.GetTenant(r.Context(), id)
	return id, t, err
}

func (c *Console) tenantDetail(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, t, err := c.tenantRecord(r, s, cl)
	if err != nil {
		return "", view{}, err
	}
	v := tenantView{T: t}
	refresh := 0
	if s.Operator() {
		wfs, err := cl.TenantWorkflows(r.Context(), id)
		if err != nil {
			return "", view{}, err
		}
		for _, wf := range wfs {
			if wf.Kind != "migration" { // shown with their data's progress below
				v.Workflows = append(v.Workflows, wf)
			}
			if wf.Status == "running" {
				refresh = 2 // the steps' progress, live
			}
		}
		if v.Migrations, err = cl.ListMigrations(r.Context(), id); err != nil {
			return "", view{}, err
		}
		tiers, err := cl.ListTiers(r.Context())
		if err != nil {
			return "", view{}, err
		}
		for _, tr := range tiers {
			if tr.Name != t.Tier {
				v.Tiers = append(v.Tiers, tr)
			}
		}
	}
	return "tenant", view{Title: t.Name, Nav: "tenant", Tenant: id, Data: v, Notice: noticeOf(r), Refresh: refresh}, nil
}

// tenantTier moves a tenant to another tier (operator): at once when the
// tier keeps its isolation model (PATCH), else by a tier migration, which
// moves its data and issuer while it keeps serving and whose progress the
// tenant's page shows.
func (c *Console) tenantTier(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, t, err := c.tenantRecord(r, s, cl)
	if err != nil {
		return "", view{}, err
	}
	tiers, err := cl.ListTiers(r.Context())
	if err != nil {
		return "", view{}, err
	}
	want := r.PostForm.Get("tier")
	i := slices.IndexFunc(tiers, func(tr api.Tier) bool { return tr.Name == want })
	if i < 0 || want == t.Tier {
		return c.again(w, r, s, cl, c.tenantDetail, http.StatusBadRequest, "Choose one of the other tiers.")
	}
	notice := "tier"
	if tiers[i].Isolation == t.Isolation {
		_, err = cl.UpdateTenant(r.Context(), id, client.TenantPatch{Tier: &want})
	} else {
		notice = "migration"
		_, err = cl.StartMigration(r.Context(), id, want)
	}
	if p := refusal(err); p != nil {
		return c.again(w, r, s, cl, c.tenantDetail, p.Status, problemMessage(p))
	}
	if err != nil {
		return "", view{}, err
	}
	return c.seeOther(w, r, "/tenants/"+url.PathEscape(id)+"?notice="+notice)
}

// tenantActions are the destructive actions on a tenant: the API call,
// what the confirmation says, and the notice after.
var tenantActions = map[string]struct {
	verb, explain, notice string
	call                  func(*http.Request, *client.Client, string) error
}{
	"suspend": {"Suspend", "Its users' and clients' tokens stop working at once and nobody of it can sign in until it is resumed.", "suspended",
		func(r *http.Request, cl *client.Client, id string) error {
			_, err := cl.SuspendTenant(r.Context(), id)
			return err
		}},
	"resume": {"Resume", "Its users and clients can sign in and use their tokens again.", "resumed",
		func(r *http.Request, cl *client.Client, id string) error {
			_, err := cl.ResumeTenant(r.Context(), id)
			return err
		}},
	"delete": {"Offboard", "Its users, keys, policies and data are deleted. This cannot be undone.", "deleted",
		func(r *http.Request, cl *client.Client, id string) error {
			_, err := cl.DeleteTenant(r.Context(), id)
			return err
		}},
}

func (c *Console) tenantConfirm(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	a, ok := tenantActions[r.PathValue("action")]
	if !ok || !s.Operator() {
		return "", view{}, &api.Problem{Status: http.StatusNotFound}
	}
	if _, err := cl.GetTenant(r.Context(), id); err != nil {
		return "", view{}, err
	}
	return "confirm", view{Title: a.verb + " " + id, Nav: "tenant", Tenant: id, Confirm: &confirmView{Action: a.verb, Object: "tenant " + id, Word: id,
		Post: c.prefix + "/tenants/" + url.PathEscape(id) + "/" + r.PathValue("action"), Cancel: c.prefix + "/tenants/" + url.PathEscape(id),
		Explain: a.explain}}, nil
}

func (c *Console) tenantAction(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	a, ok := tenantActions[r.PathValue("action")]
	if !ok || !s.Operator() {
		return "", view{}, &api.Problem{Status: http.StatusNotFound}
	}
	if r.PostForm.Get("confirm") != id {
		return "confirm", view{Title: a.verb + " " + id, Nav: "tenant", Tenant: id, Status: http.StatusBadRequest,
			Error: "Type the tenant's id exactly to confirm.",
			Confirm: &confirmView{Action: a.verb, Object: "tenant " + id, Word: id, Post: r.URL.Path,
				Cancel: c.prefix + "/tenants/" + url.PathEscape(id), Explain: a.explain}}, nil
	}
	if err := a.call(r, cl, id); err != nil {
		return "", view{}, err
	}
	return c.seeOther(w, r, "/tenants/"+url.PathEscape(id)+"?notice="+a.notice)
}

// usersView is a tenant's users.
type usersView struct {
	Items    []api.User
	Next     string
	Created  *api.User // just created: its temporary password is shown once
	NewEmail string
}

func (c *Console) userList(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	var page struct {
		Items      []api.User `json:"items"`
		NextCursor string     `json:"next_cursor"`
	}
	q := url.Values{"limit": {"100"}}
	if cur := r.URL.Query().Get("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	if err := cl.Do(r.Context(), http.MethodGet, "/v1/tenants/"+url.PathEscape(id)+"/users?"+q.Encode(), nil, nil, &page); err != nil {
		return "", view{}, err
	}
	return "users", view{Title: "Users of " + id, Nav: "users", Tenant: id, Data: usersView{Items: page.Items, Next: page.NextCursor}}, nil
}

func (c *Console) userCreate(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	in := api.CreateUser{Email: strings.TrimSpace(r.PostForm.Get("email"))}
	if r.PostForm.Get("admin") == "on" {
		in.Groups = []string{"admins"}
	}
	var u api.User
	err = cl.Do(r.Context(), http.MethodPost, "/v1/tenants/"+url.PathEscape(id)+"/users", nil, in, &u)
	if p := refusal(err); p != nil {
		return "users", view{Title: "Users of " + id, Nav: "users", Tenant: id, Status: p.Status, Error: problemMessage(p),
			Data: usersView{NewEmail: in.Email}}, nil
	}
	if err != nil {
		return "", view{}, err
	}
	name, v, err := c.userList(w, r, s, cl)
	if err == nil {
		uv := v.Data.(usersView)
		uv.Created = &u
		v.Data, v.Notice = uv, "User added."
	}
	return name, v, err
}

// postureView is a list of findings.
type postureView struct {
	Page api.PosturePage
}

func (c *Console) posture(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	page, err := cl.ListPosture(r.Context(), client.PostureQuery{Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		return "", view{}, err
	}
	return "posture", view{Title: "Posture", Nav: "posture", Data: postureView{Page: page}, Notice: noticeOf(r)}, nil
}

func (c *Console) tenantPosture(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	page, err := cl.ListTenantPosture(r.Context(), id, client.PostureQuery{Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		return "", view{}, err
	}
	return "posture", view{Title: "Posture of " + id, Nav: "tposture", Tenant: id, Data: postureView{Page: page}}, nil
}

func (c *Console) postureScan(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	if _, err := cl.ScanPosture(r.Context()); err != nil {
		return "", view{}, err
	}
	return c.seeOther(w, r, "/posture?notice=scanned")
}

// sessionsView is a user's browser sessions.
type sessionsView struct {
	User  api.User
	Items []api.Session
}

func (c *Console) userSessions(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	u, err := cl.GetUser(r.Context(), id, r.PathValue("user"))
	if err != nil {
		return "", view{}, err
	}
	ss, err := cl.UserSessions(r.Context(), id, u.ID)
	if err != nil {
		return "", view{}, err
	}
	return "sessions", view{Title: "Sessions of " + u.Email, Nav: "users", Tenant: id, Data: sessionsView{User: u, Items: ss}, Notice: noticeOf(r)}, nil
}

// userSessionEnd ends a user's session: protective and without loss (they
// sign in again), so no typed confirmation.
func (c *Console) userSessionEnd(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	uid := r.PathValue("user")
	if err := cl.EndUserSession(r.Context(), id, uid, r.PathValue("session")); err != nil {
		return "", view{}, err
	}
	return c.seeOther(w, r, "/tenants/"+url.PathEscape(id)+"/users/"+url.PathEscape(uid)+"/sessions?notice=session_ended")
}
