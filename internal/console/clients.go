package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// clientsView is a tenant's OAuth clients; Created is a new one, whose
// secret is shown this once.
type clientsView struct {
	Items   []api.Client
	Created *api.Client
	Form    api.CreateClient
	Grants  []string
}

// clientGrants are the grant types the form offers.
var clientGrants = []string{"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"}

func (c *Console) clients(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	return c.clientsPage(r, s, cl, clientsView{}, http.StatusOK, "")
}

func (c *Console) clientsPage(r *http.Request, s *session, cl *client.Client, v clientsView, status int, errMsg string) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	if v.Items, err = cl.ListOAuthClients(r.Context(), id); err != nil {
		return "", view{}, err
	}
	v.Grants = clientGrants
	notice := noticeOf(r)
	if v.Created != nil {
		notice = "Client registered."
	}
	return "clients", view{Title: "OAuth clients of " + id, Nav: "clients", Tenant: id, Data: v, Status: status, Error: errMsg, Notice: notice}, nil
}

// lines splits a textarea into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (c *Console) clientCreate(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	f := r.PostForm
	in := api.CreateClient{Name: strings.TrimSpace(f.Get("name")), GrantTypes: f["grant"], RedirectURIs: lines(f.Get("redirect_uris")),
		Scopes: strings.Fields(f.Get("scopes")), Public: f.Get("public") == "on"}
	created, err := cl.CreateOAuthClient(r.Context(), id, in)
	if p := refusal(err); p != nil {
		return c.clientsPage(r, s, cl, clientsView{Form: in}, p.Status, problemMessage(p))
	}
	if err != nil {
		return "", view{}, err
	}
	return c.clientsPage(r, s, cl, clientsView{Created: &created}, http.StatusOK, "")
}

func (c *Console) clientConfirm(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	cs, err := cl.ListOAuthClients(r.Context(), id)
	if err != nil {
		return "", view{}, err
	}
	cid := r.PathValue("client")
	for _, oc := range cs {
		if oc.ClientID == cid {
			back := c.prefix + "/tenants/" + url.PathEscape(id) + "/clients"
			return "confirm", view{Title: "Delete client " + oc.Name, Nav: "clients", Tenant: id, Confirm: &confirmView{Action: "Delete",
				Object: "client " + oc.ClientID, Word: oc.ClientID, Post: back + "/" + url.PathEscape(oc.ClientID) + "/delete", Cancel: back,
				Explain: "Its tokens, and those its users got through it, stop working at once, and it can get no more."}}, nil
		}
	}
	return "", view{}, &api.Problem{Status: http.StatusNotFound}
}

// groupsView is a tenant's groups.
type groupsView struct {
	Items []api.Group
}

func (c *Console) groups(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	gs, err := cl.ListGroups(r.Context(), id)
	if err != nil {
		return "", view{}, err
	}
	return "groups", view{Title: "Groups of " + id, Nav: "groups", Tenant: id, Data: groupsView{Items: gs}, Notice: noticeOf(r)}, nil
}

// groupPost creates a group, or adds a member (by email) to one.
func (c *Console) groupPost(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	id, err := c.tenantOf(r, s)
	if err != nil {
		return "", view{}, err
	}
	f := r.PostForm
	notice := "group"
	if group := f.Get("group"); group != "" {
		email := strings.TrimSpace(f.Get("email"))
		var page api.UserPage
		page, err = cl.ListUsers(r.Context(), id, 1, "", email)
		if err == nil && (len(page.Items) != 1 || !strings.EqualFold(page.Items[0].Email, email)) {
			err = &api.Problem{Status: http.StatusBadRequest, Code: "user_not_found", Detail: "no user of this tenant has the email " + email}
		}
		if err == nil {
			err = cl.SetMember(r.Context(), id, group, page.Items[0].ID, true)
		}
		notice = "member"
	} else {
		_, err = cl.CreateGroup(r.Context(), id, strings.TrimSpace(f.Get("name")), strings.TrimSpace(f.Get("description")))
	}
	if p := refusal(err); p != nil {
		return c.again(w, r, s, cl, c.groups, p.Status, problemMessage(p))
	}
	if err != nil {
		return "", view{}, err
	}
	return c.seeOther(w, r, "/tenants/"+url.PathEscape(id)+"/groups?notice="+notice)
}
