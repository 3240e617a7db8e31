package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The API's bodies for users and groups (package sdk/api), under this
// package's names.
type (
	User       = api.User
	CreateUser = api.CreateUser
	UserPatch  = api.PatchUser
	UserPage   = api.UserPage
	Group      = api.Group
)

func usersPath(tenant string) string { return "/v1/tenants/" + url.PathEscape(tenant) + "/users" }

// CreateUser adds a user to a tenant.
func (c *Client) CreateUser(ctx context.Context, tenant string, in CreateUser) (User, error) {
	var u User
	err := c.Do(ctx, http.MethodPost, usersPath(tenant), nil, in, &u)
	return u, err
}

// GetUser returns one user.
func (c *Client) GetUser(ctx context.Context, tenant, id string) (User, error) {
	var u User
	err := c.Do(ctx, http.MethodGet, userPath(tenant, id), nil, nil, &u)
	return u, err
}

// ListUsers returns a page of a tenant's users; email, if set, selects one address.
func (c *Client) ListUsers(ctx context.Context, tenant string, limit int, cursor, email string) (UserPage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if email != "" {
		q.Set("email", email)
	}
	var p UserPage
	err := c.Do(ctx, http.MethodGet, usersPath(tenant)+"?"+q.Encode(), nil, nil, &p)
	return p, err
}

// UpdateUser applies a partial update.
func (c *Client) UpdateUser(ctx context.Context, tenant, id string, p UserPatch) (User, error) {
	var u User
	err := c.Do(ctx, http.MethodPatch, userPath(tenant, id), nil, p, &u)
	return u, err
}

// DeleteUser removes a user.
func (c *Client) DeleteUser(ctx context.Context, tenant, id string) error {
	return c.Do(ctx, http.MethodDelete, userPath(tenant, id), nil, nil, nil)
}

func groupsPath(tenant string) string { return "/v1/tenants/" + url.PathEscape(tenant) + "/groups" }

// CreateGroup adds a group to a tenant.
func (c *Client) CreateGroup(ctx context.Context, tenant, name, description string) (Group, error) {
	var g Group
	err := c.Do(ctx, http.MethodPost, groupsPath(tenant), nil, api.CreateGroup{Name: name, Description: description}, &g)
	return g, err
}

// ListGroups returns a tenant's groups.
func (c *Client) ListGroups(ctx context.Context, tenant string) ([]Group, error) {
	var out api.List[Group]
	err := c.Do(ctx, http.MethodGet, groupsPath(tenant), nil, nil, &out)
	return out.Items, err
}

// SetMember adds (member true) or removes a user to or from a group.
func (c *Client) SetMember(ctx context.Context, tenant, group, userID string, member bool) error {
	method := http.MethodPut
	if !member {
		method = http.MethodDelete
	}
	return c.Do(ctx, method, groupsPath(tenant)+"/"+url.PathEscape(group)+"/members/"+url.PathEscape(userID), nil, nil, nil)
}

func userPath(tenant, id string) string { return usersPath(tenant) + "/" + url.PathEscape(id) }

// EnrollTOTP starts the enrollment of a user's second factor (TOTP),
// replacing any: the secret and recovery codes are shown this once. The
// factor is on once ConfirmTOTP gets a code of it.
func (c *Client) EnrollTOTP(ctx context.Context, tenant, id string) (api.TOTPEnrollment, error) {
	return call[api.TOTPEnrollment](ctx, c, http.MethodPost, userPath(tenant, id)+"/totp", nil)
}

// ConfirmTOTP turns a user's enrolled second factor on with a current code.
func (c *Client) ConfirmTOTP(ctx context.Context, tenant, id, code string) error {
	return c.Do(ctx, http.MethodPost, userPath(tenant, id)+"/totp/confirm", nil, api.TOTPConfirmation{Code: code}, nil)
}

// RemoveTOTP removes a user's second factor.
func (c *Client) RemoveTOTP(ctx context.Context, tenant, id string) error {
	return c.Do(ctx, http.MethodDelete, userPath(tenant, id)+"/totp", nil, nil, nil)
}

// GetMe returns the user whose token the client sends (a user's own token
// only).
func (c *Client) GetMe(ctx context.Context) (User, error) {
	return call[User](ctx, c, http.MethodGet, "/v1/me", nil)
}

// EnrollMyTOTP starts the enrollment of the signed-in user's own second
// factor; one already confirmed is replaced only by an admin.
func (c *Client) EnrollMyTOTP(ctx context.Context) (api.TOTPEnrollment, error) {
	return call[api.TOTPEnrollment](ctx, c, http.MethodPost, "/v1/me/totp", nil)
}

// ConfirmMyTOTP turns the signed-in user's enrolled factor on.
func (c *Client) ConfirmMyTOTP(ctx context.Context, code string) error {
	return c.Do(ctx, http.MethodPost, "/v1/me/totp/confirm", nil, api.TOTPConfirmation{Code: code}, nil)
}

func idpPath(tenant string) string { return "/v1/tenants/" + url.PathEscape(tenant) + "/idp" }

// GetIdP returns a tenant's upstream OpenID provider (404 idp_not_found
// without one).
func (c *Client) GetIdP(ctx context.Context, tenant string) (api.IdP, error) {
	return call[api.IdP](ctx, c, http.MethodGet, idpPath(tenant), nil)
}

// SetIdP connects a tenant's own OpenID provider, or replaces it.
func (c *Client) SetIdP(ctx context.Context, tenant string, in api.IdPRequest) (api.IdP, error) {
	return call[api.IdP](ctx, c, http.MethodPut, idpPath(tenant), in)
}

// DeleteIdP disconnects a tenant's provider.
func (c *Client) DeleteIdP(ctx context.Context, tenant string) error {
	return c.Do(ctx, http.MethodDelete, idpPath(tenant), nil, nil, nil)
}

func identityConfigPath(tenant string) string {
	return "/v1/tenants/" + url.PathEscape(tenant) + "/identity-config"
}

// GetIdentityConfig returns a tenant's identity configuration.
func (c *Client) GetIdentityConfig(ctx context.Context, tenant string) (api.IdentityConfig, error) {
	return call[api.IdentityConfig](ctx, c, http.MethodGet, identityConfigPath(tenant), nil)
}

// UpdateIdentityConfig changes some of a tenant's identity configuration.
func (c *Client) UpdateIdentityConfig(ctx context.Context, tenant string, p api.IdentityConfigPatch) (api.IdentityConfig, error) {
	return call[api.IdentityConfig](ctx, c, http.MethodPatch, identityConfigPath(tenant), p)
}

func brandingPath(tenant string) string { return "/v1/tenants/" + url.PathEscape(tenant) + "/branding" }

// GetBranding returns a tenant's sign-in branding (empty fields: the
// default look).
func (c *Client) GetBranding(ctx context.Context, tenant string) (api.Branding, error) {
	return call[api.Branding](ctx, c, http.MethodGet, brandingPath(tenant), nil)
}

// SetBranding replaces a tenant's sign-in branding.
func (c *Client) SetBranding(ctx context.Context, tenant string, b api.Branding) (api.Branding, error) {
	return call[api.Branding](ctx, c, http.MethodPut, brandingPath(tenant), b)
}

// DeleteBranding puts a tenant's sign-in page back to the default look.
func (c *Client) DeleteBranding(ctx context.Context, tenant string) error {
	return c.Do(ctx, http.MethodDelete, brandingPath(tenant), nil, nil, nil)
}

// MySessions lists the signed-in user's own browser sessions.
func (c *Client) MySessions(ctx context.Context) ([]api.Session, error) {
	out, err := call[api.List[api.Session]](ctx, c, http.MethodGet, "/v1/me/sessions", nil)
	return out.Items, err
}

// EndMySession ends one of the signed-in user's browser sessions.
func (c *Client) EndMySession(ctx context.Context, sid string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/me/sessions/"+url.PathEscape(sid), nil, nil, nil)
}

// UserSessions lists a user's browser sessions (the tenant's admins).
func (c *Client) UserSessions(ctx context.Context, tenant, user string) ([]api.Session, error) {
	out, err := call[api.List[api.Session]](ctx, c, http.MethodGet, userPath(tenant, user)+"/sessions", nil)
	return out.Items, err
}

// EndUserSession ends one of a user's browser sessions (the tenant's admins).
func (c *Client) EndUserSession(ctx context.Context, tenant, user, sid string) error {
	return c.Do(ctx, http.MethodDelete, userPath(tenant, user)+"/sessions/"+url.PathEscape(sid), nil, nil, nil)
}
