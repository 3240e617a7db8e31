package api

import "time"

// FunctionConfig is a function's settings (the config part of a publish).
type FunctionConfig struct {
	Name             string            `json:"name"`
	TenancyMode      string            `json:"tenancy_mode"` // "shared" or "per_tenant"
	MemoryMiB        int               `json:"memory_mib,omitempty"`
	Timeout          string            `json:"timeout,omitempty"` // a Go duration, default 10s
	Env              map[string]string `json:"env,omitempty"`
	MaxEnvsPerTenant int               `json:"max_environments_per_tenant,omitempty"`
	IdleTTL          string            `json:"idle_ttl,omitempty"` // a Go duration, default 10m
	TmpMiB           int               `json:"tmp_mib,omitempty"`  // the /tmp quota per environment, default 16
}

// Function is a registered function: its config as published (settings
// left out, which take their defaults, are absent) and its current version.
type Function struct {
	FunctionConfig
	Version   int       `json:"version"`
	Digest    string    `json:"digest"` // SHA-256 of the module, hex
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// FunctionEnvironment describes a live execution environment of a function.
type FunctionEnvironment struct {
	ID       string    `json:"id"`
	TenantID string    `json:"tenant_id,omitempty"` // empty for a shared function's
	Version  int       `json:"version"`
	Busy     bool      `json:"busy"`
	LastUsed time.Time `json:"last_used,omitzero"`
}
