package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The API's bodies for policy stores and decisions (package sdk/api),
// under this package's names.
type (
	EntityRef           = api.EntityRef
	PolicyStore         = api.PolicyStore
	PolicyStoreUpdate   = api.PatchPolicyStore
	PolicySchema        = api.PolicySchema
	Policy              = api.Policy
	PolicyInput         = api.PolicyInput
	PolicyPage          = api.PolicyPage
	PolicyValidation    = api.PolicyValidation
	PolicyTemplate      = api.PolicyTemplate
	PolicyTemplateInput = api.PolicyTemplateInput
	PolicyTemplatePage  = api.PolicyTemplatePage
	AuthorizeRequest    = api.AuthorizationRequest
	Decision            = api.Decision
	DecisionError       = api.DecisionError
)

// Schema formats.
const (
	SchemaFormatCedar = "cedar" // Cedar schema text
	SchemaFormatJSON  = "json"  // Cedar's JSON schema format
)

// CedarSchema returns a PolicySchema holding Cedar schema text.
func CedarSchema(text string) PolicySchema {
	b, _ := json.Marshal(text)
	return PolicySchema{Format: SchemaFormatCedar, Schema: b}
}

// Policy types.
const (
	PolicyStatic = "static" // a policy with its own statement
	PolicyLinked = "linked" // a template linked to slot values
)

// Decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// globalPoliciesPath is the collection of the operator's global policies.
const globalPoliciesPath = "/v1/global-policies"

// authzPath is a path under a tenant: "/v1/tenants/{tenant}/" + rest.
func authzPath(tenant, rest string) string {
	return "/v1/tenants/" + url.PathEscape(tenant) + "/" + rest
}

// itemPath is the path of object id in a collection.
func itemPath(collection, id string) string { return collection + "/" + url.PathEscape(id) }

// pagePath is a collection path with the limit and cursor of a list.
func pagePath(collection string, limit int, cursor string) string {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if len(q) == 0 {
		return collection
	}
	return collection + "?" + q.Encode()
}

// call sends a request with body in (nil for none) and decodes a T.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var out T
	err := c.Do(ctx, method, path, nil, in, &out)
	return out, err
}

// GetPolicyStore returns the settings of a tenant's policy store.
func (c *Client) GetPolicyStore(ctx context.Context, tenant string) (PolicyStore, error) {
	return call[PolicyStore](ctx, c, http.MethodGet, authzPath(tenant, "policy-store"), nil)
}

// UpdatePolicyStore applies a partial update to a tenant's policy store.
func (c *Client) UpdatePolicyStore(ctx context.Context, tenant string, u PolicyStoreUpdate) (PolicyStore, error) {
	return call[PolicyStore](ctx, c, http.MethodPatch, authzPath(tenant, "policy-store"), u)
}

// GetSchema returns a tenant's schema (404 schema_not_found without one).
func (c *Client) GetSchema(ctx context.Context, tenant string) (PolicySchema, error) {
	return call[PolicySchema](ctx, c, http.MethodGet, authzPath(tenant, "policy-store/schema"), nil)
}

// PutSchema sets a tenant's schema. Every policy, template and link of the
// store must conform to it, or nothing changes.
func (c *Client) PutSchema(ctx context.Context, tenant string, s PolicySchema) (PolicySchema, error) {
	return call[PolicySchema](ctx, c, http.MethodPut, authzPath(tenant, "policy-store/schema"), s)
}

// CreatePolicy adds a static or linked policy to a tenant's store.
func (c *Client) CreatePolicy(ctx context.Context, tenant string, in PolicyInput) (Policy, error) {
	return call[Policy](ctx, c, http.MethodPost, authzPath(tenant, "policies"), in)
}

// ValidatePolicy checks a policy against a tenant's store without adding
// it: Valid, or the Problem its creation would give.
func (c *Client) ValidatePolicy(ctx context.Context, tenant string, in PolicyInput) (PolicyValidation, error) {
	return call[PolicyValidation](ctx, c, http.MethodPost, authzPath(tenant, "policies/validate"), in)
}

// ListPolicies returns a page of a tenant's policies.
func (c *Client) ListPolicies(ctx context.Context, tenant string, limit int, cursor string) (PolicyPage, error) {
	return call[PolicyPage](ctx, c, http.MethodGet, pagePath(authzPath(tenant, "policies"), limit, cursor), nil)
}

// GetPolicy returns one policy of a tenant.
func (c *Client) GetPolicy(ctx context.Context, tenant, id string) (Policy, error) {
	return call[Policy](ctx, c, http.MethodGet, itemPath(authzPath(tenant, "policies"), id), nil)
}

// ReplacePolicy replaces a policy of a tenant (all of it: fields left empty
// in in are cleared).
func (c *Client) ReplacePolicy(ctx context.Context, tenant, id string, in PolicyInput) (Policy, error) {
	return call[Policy](ctx, c, http.MethodPut, itemPath(authzPath(tenant, "policies"), id), in)
}

// DeletePolicy removes a policy of a tenant.
func (c *Client) DeletePolicy(ctx context.Context, tenant, id string) error {
	return c.Do(ctx, http.MethodDelete, itemPath(authzPath(tenant, "policies"), id), nil, nil, nil)
}

// CreateTemplate adds a policy template to a tenant's store.
func (c *Client) CreateTemplate(ctx context.Context, tenant string, in PolicyTemplateInput) (PolicyTemplate, error) {
	return call[PolicyTemplate](ctx, c, http.MethodPost, authzPath(tenant, "policy-templates"), in)
}

// ListTemplates returns a page of a tenant's policy templates.
func (c *Client) ListTemplates(ctx context.Context, tenant string, limit int, cursor string) (PolicyTemplatePage, error) {
	return call[PolicyTemplatePage](ctx, c, http.MethodGet, pagePath(authzPath(tenant, "policy-templates"), limit, cursor), nil)
}

// GetTemplate returns one policy template of a tenant.
func (c *Client) GetTemplate(ctx context.Context, tenant, id string) (PolicyTemplate, error) {
	return call[PolicyTemplate](ctx, c, http.MethodGet, itemPath(authzPath(tenant, "policy-templates"), id), nil)
}

// ReplaceTemplate replaces a policy template. The policies linked to it
// follow the new text; the change is refused if any of them would no longer
// link or conform to the schema.
func (c *Client) ReplaceTemplate(ctx context.Context, tenant, id string, in PolicyTemplateInput) (PolicyTemplate, error) {
	return call[PolicyTemplate](ctx, c, http.MethodPut, itemPath(authzPath(tenant, "policy-templates"), id), in)
}

// DeleteTemplate removes a policy template; one with linked policies is
// refused (409 template_in_use).
func (c *Client) DeleteTemplate(ctx context.Context, tenant, id string) error {
	return c.Do(ctx, http.MethodDelete, itemPath(authzPath(tenant, "policy-templates"), id), nil, nil, nil)
}

// Authorize decides one request against a tenant's effective policies
// (its own and the global ones).
func (c *Client) Authorize(ctx context.Context, tenant string, r AuthorizeRequest) (Decision, error) {
	return call[Decision](ctx, c, http.MethodPost, authzPath(tenant, "authorize"), r)
}

// AuthorizeBatch decides up to 100 requests of a tenant, answering in order.
// A malformed request fails the whole batch.
func (c *Client) AuthorizeBatch(ctx context.Context, tenant string, rs []AuthorizeRequest) ([]Decision, error) {
	out, err := call[api.AuthorizationBatchResult](ctx, c, http.MethodPost, authzPath(tenant, "authorize/batch"),
		api.AuthorizationBatch{Requests: rs})
	return out.Results, err
}

// CreateGlobalPolicy adds a global policy (static only), which applies to
// every tenant. Operator only.
func (c *Client) CreateGlobalPolicy(ctx context.Context, in PolicyInput) (Policy, error) {
	return call[Policy](ctx, c, http.MethodPost, globalPoliciesPath, in)
}

// ListGlobalPolicies returns a page of the global policies. Operator only.
func (c *Client) ListGlobalPolicies(ctx context.Context, limit int, cursor string) (PolicyPage, error) {
	return call[PolicyPage](ctx, c, http.MethodGet, pagePath(globalPoliciesPath, limit, cursor), nil)
}

// GetGlobalPolicy returns one global policy. Operator only.
func (c *Client) GetGlobalPolicy(ctx context.Context, id string) (Policy, error) {
	return call[Policy](ctx, c, http.MethodGet, itemPath(globalPoliciesPath, id), nil)
}

// ReplaceGlobalPolicy replaces a global policy. Operator only.
func (c *Client) ReplaceGlobalPolicy(ctx context.Context, id string, in PolicyInput) (Policy, error) {
	return call[Policy](ctx, c, http.MethodPut, itemPath(globalPoliciesPath, id), in)
}

// DeleteGlobalPolicy removes a global policy. Operator only.
func (c *Client) DeleteGlobalPolicy(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, itemPath(globalPoliciesPath, id), nil, nil, nil)
}
