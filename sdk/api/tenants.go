package api

import (
	"encoding/json"
	"time"
)

// Tier is a class of service: its isolation model and the limits that come
// with it.
type Tier struct {
	Name                    string  `json:"name"`
	Isolation               string  `json:"isolation"` // pool, bridge or silo
	RateLimitRPS            float64 `json:"rate_limit_rps"`
	RateLimitBurst          int     `json:"rate_limit_burst"`
	MaxFunctionEnvironments int     `json:"max_function_environments"`
	// The gateway's usage plan for the tier's tenants (omitted: none).
	GatewayRPS         float64 `json:"gateway_rps,omitempty"`
	GatewayBurst       int     `json:"gateway_burst,omitempty"`
	GatewayQuota       int64   `json:"gateway_quota,omitempty"`
	GatewayQuotaPeriod string  `json:"gateway_quota_period,omitempty"` // day or month
	// Each tenant's event stream limits (omitted: the built-in ones).
	StreamMaxBytes     int64   `json:"stream_max_bytes,omitempty"`
	StreamMaxMsgs      int64   `json:"stream_max_msgs,omitempty"`
	StreamMaxConsumers int     `json:"stream_max_consumers,omitempty"`
	StreamPublishRPS   float64 `json:"stream_publish_rps,omitempty"`
	StreamPublishBurst int     `json:"stream_publish_burst,omitempty"`
}

// Tenant is a tenant as the API returns it.
type Tenant struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Tier      string          `json:"tier"`
	Isolation string          `json:"isolation"` // pool, bridge or silo
	Status    string          `json:"status"`    // provisioning, active, suspended, offboarding or deleted
	Domains   []string        `json:"domains"`
	Config    json.RawMessage `json:"config"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`

	// PriorIsolation is the isolation a tier migration moved the tenant
	// from, at IsolationChangedAt: that isolation's issuer keeps
	// verifying the tokens it issued until they expire.
	PriorIsolation     string    `json:"prior_isolation,omitempty"`
	IsolationChangedAt time.Time `json:"isolation_changed_at,omitzero"`

	// InitialAdmin is set only in the answer of the create that made the
	// tenant with an admin_email: the temporary password, shown once.
	InitialAdmin *InitialAdmin `json:"initial_admin,omitempty"`
}

// InitialAdmin is a new tenant's first admin and their temporary password.
type InitialAdmin struct {
	Email             string `json:"email"`
	TemporaryPassword string `json:"temporary_password"`
}

// CreateTenant is the body of a tenant creation.
type CreateTenant struct {
	ID      string          `json:"id"`
	Name    string          `json:"name,omitempty"`
	Tier    string          `json:"tier,omitempty"`
	Domains []string        `json:"domains,omitempty"`
	Config  json.RawMessage `json:"config,omitempty"`
	// AdminEmail, if set, makes onboarding create the tenant's first admin.
	AdminEmail string `json:"admin_email,omitempty"`
}

// PatchTenant is a partial update of a tenant; nil fields are left alone.
type PatchTenant struct {
	Name    *string         `json:"name,omitempty"`
	Tier    *string         `json:"tier,omitempty"`
	Domains *[]string       `json:"domains,omitempty"`
	Config  json.RawMessage `json:"config,omitempty"`
}

// TenantPage is a page of tenants.
type TenantPage struct {
	Items      []Tenant `json:"items"`
	NextCursor string   `json:"next_cursor"`
}

// Workflow is a tenant's onboarding or offboarding, a durable sequence of
// named steps.
type Workflow struct {
	ID        string         `json:"id"`
	TenantID  string         `json:"tenant_id"`
	Kind      string         `json:"kind"`   // onboarding, offboarding or migration
	Status    string         `json:"status"` // running, done, cancelled or failed
	Attempts  int            `json:"attempts"`
	LastError string         `json:"last_error,omitempty"`
	Steps     []WorkflowStep `json:"steps"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// WorkflowStep is a completed step of a workflow.
type WorkflowStep struct {
	Name        string    `json:"name"`
	CompletedAt time.Time `json:"completed_at"`
}

// StartTenantMigration starts moving a tenant to another tier
// (POST /v1/tenants/{tenant}/migrations).
type StartTenantMigration struct {
	TargetTier string `json:"target_tier"`
}

// TenantMigration is a tier migration: a durable workflow that moves the
// tenant's data, issuer, usage plan and routes to another tier while it
// keeps serving.
type TenantMigration struct {
	ID            string `json:"id"`
	TenantID      string `json:"tenant_id"`
	FromTier      string `json:"from_tier"`
	ToTier        string `json:"to_tier"`
	FromIsolation string `json:"from_isolation"`
	ToIsolation   string `json:"to_isolation"`
	// Status is running, done, failed (a step found it cannot succeed and
	// rolled it back: the tenant stays where it was) or cancelled (an
	// offboarding ended it).
	Status string `json:"status"`
	// Step is the step running now (while running), the next one not done.
	Step      string         `json:"step,omitempty"`
	Steps     []WorkflowStep `json:"steps"`
	Attempts  int            `json:"attempts"`
	LastError string         `json:"last_error,omitempty"`
	// Data is the move of the tenant's application data, when it has a
	// placement and the migration changes its isolation.
	Data      *DataMoveProgress `json:"data,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}
