package api

import (
	"encoding/json"
	"time"
)

// EntityRef names a Cedar entity: its type (e.g. User or App::User) and id.
type EntityRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// PolicyStore is the settings of a tenant's Cedar policy store.
type PolicyStore struct {
	TenantID string `json:"tenant_id"`
	// HasSchema says whether policies are validated against a schema.
	HasSchema bool `json:"has_schema"`
	// LogAllows makes every allow decision audited too (denies always are).
	LogAllows bool `json:"log_allows"`
	// PrincipalType and GroupType are the entity types of the caller's user
	// and groups when an authorization request from a user's token names
	// no principal.
	PrincipalType string    `json:"principal_type"`
	GroupType     string    `json:"group_type"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// PatchPolicyStore is a partial update of a policy store; nil fields are
// left alone.
type PatchPolicyStore struct {
	LogAllows     *bool   `json:"log_allows,omitempty"`
	PrincipalType *string `json:"principal_type,omitempty"`
	GroupType     *string `json:"group_type,omitempty"`
}

// PolicySchema is a policy store's Cedar schema, in the format it was put in.
type PolicySchema struct {
	// Format is "cedar" (Cedar schema text) or "json" (Cedar's JSON schema
	// format).
	Format string `json:"format"`
	// Schema is the Cedar schema text as a JSON string (format cedar) or
	// the JSON schema object (format json).
	Schema    json.RawMessage `json:"schema"`
	UpdatedAt time.Time       `json:"updated_at,omitzero"`
}

// Text returns the schema as text: the Cedar schema text, or the JSON schema.
func (s PolicySchema) Text() string {
	var text string
	if err := json.Unmarshal(s.Schema, &text); err == nil {
		return text
	}
	return string(s.Schema)
}

// Policy is a Cedar policy of a tenant's store, or a global policy.
type Policy struct {
	ID   string `json:"id"`
	Type string `json:"type"` // "static", or "linked" to a template
	// Statement is the Cedar text; for a linked policy, the template with
	// its slots filled, as it is evaluated now.
	Statement   string     `json:"statement"`
	Description string     `json:"description"`
	TemplateID  string     `json:"template_id,omitempty"`
	Principal   *EntityRef `json:"principal,omitempty"` // a linked policy's ?principal
	Resource    *EntityRef `json:"resource,omitempty"`  // a linked policy's ?resource
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

// PolicyInput is the body of a policy creation or replacement: a static
// policy (Statement) or a link of a template (TemplateID, and Principal
// and Resource for the slots the template uses).
type PolicyInput struct {
	Statement   string     `json:"statement,omitempty"`
	Description string     `json:"description,omitempty"`
	TemplateID  string     `json:"template_id,omitempty"`
	Principal   *EntityRef `json:"principal,omitempty"`
	Resource    *EntityRef `json:"resource,omitempty"`
}

// PolicyValidation is the answer to a policy's validation: whether the
// store would take it, and if not, the problem its creation would give
// (code, detail and field; with the line and column in the detail).
type PolicyValidation struct {
	Valid   bool     `json:"valid"`
	Problem *Problem `json:"problem,omitempty"`
}

// PolicyPage is a page of policies.
type PolicyPage struct {
	Items      []Policy `json:"items"`
	NextCursor string   `json:"next_cursor"`
}

// PolicyTemplate is a Cedar policy template of a tenant's store.
type PolicyTemplate struct {
	ID          string    `json:"id"`
	Statement   string    `json:"statement"`
	Description string    `json:"description"`
	Slots       []string  `json:"slots"` // "?principal", "?resource"
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// PolicyTemplateInput is the body of a template creation or replacement.
type PolicyTemplateInput struct {
	Statement   string `json:"statement"`
	Description string `json:"description,omitempty"`
}

// PolicyTemplatePage is a page of policy templates.
type PolicyTemplatePage struct {
	Items      []PolicyTemplate `json:"items"`
	NextCursor string           `json:"next_cursor"`
}

// AuthorizationRequest asks whether Principal may do Action on Resource.
type AuthorizationRequest struct {
	// Principal may be nil when the token is a user's of the tenant: the
	// principal is then that user, whose parents are the user's groups.
	Principal *EntityRef `json:"principal,omitempty"`
	Action    *EntityRef `json:"action"`
	Resource  *EntityRef `json:"resource"`
	// Context is a JSON object (Cedar's JSON value format).
	Context json.RawMessage `json:"context,omitempty"`
	// Entities is a JSON array in Cedar's JSON entity format.
	Entities json.RawMessage `json:"entities,omitempty"`
}

// AuthorizationBatch is the body of a batch of authorization requests,
// decided in order.
type AuthorizationBatch struct {
	Requests []AuthorizationRequest `json:"requests"`
}

// AuthorizationBatchResult is the answer to an AuthorizationBatch: one
// decision a request, in the order of the requests.
type AuthorizationBatchResult struct {
	Results []Decision `json:"results"`
}

// Decision is the answer to an AuthorizationRequest.
type Decision struct {
	Decision string `json:"decision"` // "allow" or "deny"
	// DeterminingPolicies are the permits that allowed or the forbids that
	// denied (empty for a default deny); global policies are "global/<id>".
	DeterminingPolicies []string        `json:"determining_policies"`
	Errors              []DecisionError `json:"errors"`
}

// DecisionError is a policy that failed to evaluate, and so was skipped.
type DecisionError struct {
	Policy  string `json:"policy"`
	Message string `json:"message"`
}
