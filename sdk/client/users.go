package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// User is a user of a tenant as the API returns it.
type User struct {
	ID                     string          `json:"id"`
	TenantID               string          `json:"tenant_id"`
	Email                  string          `json:"email"`
	Status                 string          `json:"status"`
	Attributes             json.RawMessage `json:"attributes"`
	Groups                 []string        `json:"groups"`
	PasswordSet            bool            `json:"password_set"`
	PasswordChangeRequired bool            `json:"password_change_required"`
	TemporaryPassword      string          `json:"temporary_password,omitempty"` // only in a create's answer
	CreatedAt              time.Time       `json:"created_at"`
	UpdatedAt              time.Time       `json:"updated_at"`
}

// CreateUser is the body of a user creation. Without a password the answer
// carries a temporary one, once.
type CreateUser struct {
	Email      string          `json:"email"`
	Password   string          `json:"password,omitempty"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
	Groups     []string        `json:"groups,omitempty"`
}

// UserPatch is a partial update of a user; nil fields are left alone.
type UserPatch struct {
	Email      *string         `json:"email,omitempty"`
	Status     *string         `json:"status,omitempty"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
	Password   *string         `json:"password,omitempty"`
}

// UserPage is a page of users.
type UserPage struct {
	Items      []User `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// Group is a group of a tenant.
type Group struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Members     int       `json:"members"`
	CreatedAt   time.Time `json:"created_at"`
}

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
	err := c.Do(ctx, http.MethodGet, usersPath(tenant)+"/"+url.PathEscape(id), nil, nil, &u)
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
	err := c.Do(ctx, http.MethodPatch, usersPath(tenant)+"/"+url.PathEscape(id), nil, p, &u)
	return u, err
}

// DeleteUser removes a user.
func (c *Client) DeleteUser(ctx context.Context, tenant, id string) error {
	return c.Do(ctx, http.MethodDelete, usersPath(tenant)+"/"+url.PathEscape(id), nil, nil, nil)
}

func groupsPath(tenant string) string { return "/v1/tenants/" + url.PathEscape(tenant) + "/groups" }

// CreateGroup adds a group to a tenant.
func (c *Client) CreateGroup(ctx context.Context, tenant, name, description string) (Group, error) {
	var g Group
	err := c.Do(ctx, http.MethodPost, groupsPath(tenant), nil, map[string]string{"name": name, "description": description}, &g)
	return g, err
}

// ListGroups returns a tenant's groups.
func (c *Client) ListGroups(ctx context.Context, tenant string) ([]Group, error) {
	var out struct {
		Items []Group `json:"items"`
	}
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
