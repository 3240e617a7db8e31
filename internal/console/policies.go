package console

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// policiesView is a tenant's Cedar policies, the editor and the
// try-a-decision panel.
type policiesView struct {
	Items     []api.Policy
	Next      string
	HasSchema bool
	Schema    string
	// Editing is the policy being edited ("" for a new one), with the
	// text in the editor.
	Editing, Statement, Description string
	// Decision is the last try's answer, and Try what was asked.
	Decision *api.Decision
	Try      tryForm
}

// tryForm is the try-a-decision panel's fields.
type tryForm struct {
	PrincipalType, PrincipalID, ActionType, ActionID, ResourceType, ResourceID, Context string
}

const newPolicyTemplate = "permit (\n  principal,\n  action,\n  resource\n);"

func (c *Console) policies(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	v := policiesView{Statement: newPolicyTemplate, Try: tryForm{ActionType: "Action"}}
	if pid := r.URL.Query().Get("edit"); pid != "" {
		p, err := cl.GetPolicy(r.Context(), id, pid)
		if err != nil {
			return "", view{}, err
		}
		v.Editing, v.Statement, v.Description = p.ID, p.Statement, p.Description
	}
	return c.policiesPage(r, s, cl, id, v, http.StatusOK, "", noticeOf(r))
}

// policiesPage fills v with the store's policies and schema and renders it.
func (c *Console) policiesPage(r *http.Request, s *session, cl *client.Client, id string, v policiesView, status int, errMsg, notice string) (string, view, error) {
	page, err := cl.ListPolicies(r.Context(), id, 100, r.URL.Query().Get("cursor"))
	if err != nil {
		return "", view{}, err
	}
	v.Items, v.Next = page.Items, page.NextCursor
	st, err := cl.GetPolicyStore(r.Context(), id)
	if err != nil {
		return "", view{}, err
	}
	if v.HasSchema = st.HasSchema; st.HasSchema {
		if sc, err := cl.GetSchema(r.Context(), id); err == nil {
			v.Schema = sc.Text()
		}
	}
	return "policies", view{Title: "Policies of " + id, Nav: "policies", Tenant: id, Data: v, Status: status, Error: errMsg, Notice: notice}, nil
}

// policySave creates a policy, or replaces the one named by "policy".
func (c *Console) policySave(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	in := api.PolicyInput{Statement: r.PostForm.Get("statement"), Description: strings.TrimSpace(r.PostForm.Get("description"))}
	pid := r.PostForm.Get("policy")
	if pid != "" {
		_, err = cl.ReplacePolicy(r.Context(), id, pid, in)
	} else {
		_, err = cl.CreatePolicy(r.Context(), id, in)
	}
	if p := refusal(err); p != nil {
		// Keep what was typed, and say what to fix.
		v := policiesView{Editing: pid, Statement: in.Statement, Description: in.Description, Try: tryForm{ActionType: "Action"}}
		return c.policiesPage(r, s, cl, id, v, p.Status, problemMessage(p), "")
	}
	if err != nil {
		return "", view{}, err
	}
	return c.seeOther(w, r, "/tenants/"+url.PathEscape(id)+"/policies?notice=policy")
}

// validateAnswer is what the editor's script gets back.
type validateAnswer struct {
	Valid   bool   `json:"valid"`
	Message string `json:"message"`
}

// policyValidate answers the editor's script, as the admin types: JSON in
// ({"statement": …}), JSON out. The CSRF token comes in a header.
func (c *Console) policyValidate(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	s, err := c.loadSession(r.Context(), r)
	if err != nil || !c.sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(s.CSRF)) != 1 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(validateAnswer{Message: "Your session ended or this page is stale. Reload it."})
		return
	}
	answer := func(status int, a validateAnswer) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(a)
	}
	if !accessAdmin.allows(s) {
		c.notFound(w, r, s) // a member: as any page they may not reach
		return
	}
	id, err := c.tenantOf(r, s)
	if err != nil {
		answer(http.StatusNotFound, validateAnswer{Message: "Not found."})
		return
	}
	var in struct {
		Statement string `json:"statement"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		answer(http.StatusBadRequest, validateAnswer{Message: "The editor sent something unreadable. Reload the page."})
		return
	}
	ctx, cancel := withTimeout(r.Context())
	defer cancel()
	cl, err := c.apiClient(ctx, r, s)
	if err != nil {
		answer(http.StatusUnauthorized, validateAnswer{Message: "Your session ended. Sign in again."})
		return
	}
	v, err := cl.ValidatePolicy(ctx, id, api.PolicyInput{Statement: in.Statement})
	switch {
	case err != nil:
		var p *api.Problem
		if errors.As(err, &p) && p.Status == http.StatusNotFound {
			answer(http.StatusNotFound, validateAnswer{Message: "Not found."})
			return
		}
		answer(http.StatusBadGateway, validateAnswer{Message: "The policy could not be checked right now."})
	case v.Valid:
		// Against the store's schema too, when it has one (the page says so).
		answer(http.StatusOK, validateAnswer{Valid: true, Message: "The policy is valid."})
	default:
		answer(http.StatusOK, validateAnswer{Message: problemMessage(v.Problem)})
	}
}

// policyTry decides a request with the tenant's policies and shows the
// decision and the policies that determined it.
func (c *Console) policyTry(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	f := r.PostForm
	t := tryForm{PrincipalType: strings.TrimSpace(f.Get("principal_type")), PrincipalID: f.Get("principal_id"),
		ActionType: strings.TrimSpace(f.Get("action_type")), ActionID: f.Get("action_id"),
		ResourceType: strings.TrimSpace(f.Get("resource_type")), ResourceID: f.Get("resource_id"), Context: strings.TrimSpace(f.Get("context"))}
	v := policiesView{Statement: newPolicyTemplate, Try: t}
	req := api.AuthorizationRequest{Principal: &api.EntityRef{Type: t.PrincipalType, ID: t.PrincipalID},
		Action: &api.EntityRef{Type: t.ActionType, ID: t.ActionID}, Resource: &api.EntityRef{Type: t.ResourceType, ID: t.ResourceID}}
	if t.Context != "" {
		if !json.Valid([]byte(t.Context)) || !strings.HasPrefix(t.Context, "{") {
			return c.policiesPage(r, s, cl, id, v, http.StatusBadRequest, "The context must be a JSON object, such as {\"ip\": \"192.0.2.1\"}.", "")
		}
		req.Context = json.RawMessage(t.Context)
	}
	d, err := cl.Authorize(r.Context(), id, req)
	if p := refusal(err); p != nil {
		return c.policiesPage(r, s, cl, id, v, p.Status, problemMessage(p), "")
	}
	if err != nil {
		return "", view{}, err
	}
	v.Decision = &d
	return c.policiesPage(r, s, cl, id, v, http.StatusOK, "", "")
}

// policyConfirm asks to confirm a policy's deletion.
func (c *Console) policyConfirm(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	p, err := cl.GetPolicy(r.Context(), id, r.PathValue("policy"))
	if err != nil {
		return "", view{}, err
	}
	back := c.prefix + "/tenants/" + url.PathEscape(id) + "/policies"
	return "confirm", view{Title: "Delete policy " + p.ID, Nav: "policies", Tenant: id, Confirm: &confirmView{Action: "Delete", Object: "policy " + p.ID,
		Word: p.ID, Post: back + "/" + url.PathEscape(p.ID) + "/delete", Cancel: back,
		Explain: "Requests it allowed are denied from now on (or those it forbade are allowed, if another policy permits them)."}}, nil
}

// deleteConfirmed is the post of a typed confirmation to delete an
// object of a tenant's section: the object's id (path value idName) typed
// in "confirm", then del, then back to the section with notice. A wrong
// word shows the confirmation page again.
func (c *Console) deleteConfirmed(idName, what, section, notice string, confirm handler,
	del func(r *http.Request, cl *client.Client, tid, id string) error) handler {
	return func(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
		tid, err := c.tenantOf(r, s)
		if err != nil {
			return "", view{}, err
		}
		id := r.PathValue(idName)
		if r.PostForm.Get("confirm") != id {
			return c.again(w, r, s, cl, confirm, http.StatusBadRequest, "Type the "+what+"'s id exactly to confirm.")
		}
		if err := del(r, cl, tid, id); err != nil {
			return "", view{}, err
		}
		return c.seeOther(w, r, "/tenants/"+url.PathEscape(tid)+"/"+section+"?notice="+notice)
	}
}
