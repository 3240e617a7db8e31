// Package tenants is the tenant registry: tenants and their tiers, domains
// and lifecycle, and the durable onboarding and offboarding workflows that
// later capabilities extend with their own steps. The tenant id, the tenant
// context of a request and the actor of a change are in the leaf package
// tenant.
package tenants

import (
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the tenant registry's migrations.
func Migrations() storage.Component {
	c := storage.Embedded("tenant", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"tenants":        storage.TenantRows("id"), // a tenant sees its own record
		"tenant_domains": storage.TenantRows("tenant_id"),
		"workflows":      storage.TenantRows("tenant_id"),
		"workflow_steps": storage.TenantRows("tenant_id"),
		// The operator's idempotency keys, though each names the tenant
		// it created.
		"tenant_idempotency": storage.PlatformRows(),
	}
	return c
}

// Isolation is the deployment model of a tenant.
type Isolation string

// The isolation models.
const (
	Pool   Isolation = "pool"   // shares every resource with other pool tenants
	Bridge Isolation = "bridge" // shares compute, has some dedicated resources
	Silo   Isolation = "silo"   // dedicated issuer, keys and upstreams
)

func (i Isolation) valid() bool { return i == Pool || i == Bridge || i == Silo }

// Status is a tenant's lifecycle state.
type Status string

// The lifecycle states.
const (
	Provisioning Status = "provisioning"
	Active       Status = "active"
	Suspended    Status = "suspended"
	Offboarding  Status = "offboarding"
	Deleted      Status = "deleted"
)

// Tenant is a customer of the SaaS product that Bulkhead isolates.
type Tenant struct {
	ID        tenant.ID       `json:"id"`
	Name      string          `json:"name"`
	Tier      string          `json:"tier"`
	Isolation Isolation       `json:"isolation"`
	Status    Status          `json:"status"`
	Domains   []string        `json:"domains"`
	Config    json.RawMessage `json:"config"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`

	// PriorIsolation is the isolation a tier migration moved the tenant
	// from, at IsolationChangedAt ("" and zero if it never moved): the
	// issuer of that isolation keeps verifying what it issued until the
	// tokens expire.
	PriorIsolation     Isolation `json:"prior_isolation,omitempty"`
	IsolationChangedAt time.Time `json:"isolation_changed_at,omitzero"`
}

// Tier is a class of service. It decides the isolation model and carries the
// limits that other capabilities read.
type Tier struct {
	Name                    string    `json:"name"`
	Isolation               Isolation `json:"isolation"`
	RateLimitRPS            float64   `json:"rate_limit_rps"`
	RateLimitBurst          int       `json:"rate_limit_burst"`
	MaxFunctionEnvironments int       `json:"max_function_environments"`

	// The gateway's usage plan for the tier (zero: no limit), which a
	// tenant's own plan overrides (see internal/gateway/usage). The rate
	// is per gateway node, the quota across all of them.
	GatewayRPS         float64 `json:"gateway_rps,omitempty"`
	GatewayBurst       int     `json:"gateway_burst,omitempty"`
	GatewayQuota       int64   `json:"gateway_quota,omitempty"`
	GatewayQuotaPeriod string  `json:"gateway_quota_period,omitempty"` // day or month

	// Each tenant's event stream (internal/events; zero: the built-in
	// limit): bytes, messages and consumers; and the messages a second
	// (with bursts) its NATS connections may send, publishes, acks and
	// API requests alike.
	StreamMaxBytes     int64   `json:"stream_max_bytes,omitempty"`
	StreamMaxMsgs      int64   `json:"stream_max_msgs,omitempty"`
	StreamMaxConsumers int     `json:"stream_max_consumers,omitempty"`
	StreamPublishRPS   float64 `json:"stream_publish_rps,omitempty"`
	StreamPublishBurst int     `json:"stream_publish_burst,omitempty"`
}

// validGateway checks the tier's usage plan: a rate needs a burst of at
// least one request, and a quota needs its period.
func (t Tier) validGateway() error {
	switch {
	case t.GatewayRPS < 0 || t.GatewayBurst < 0 || t.GatewayQuota < 0:
		return fmt.Errorf("tier %q: gateway_rps, gateway_burst and gateway_quota cannot be negative", t.Name)
	case t.GatewayRPS > 0 && t.GatewayBurst < 1:
		return fmt.Errorf("tier %q: gateway_rps needs a gateway_burst of at least 1", t.Name)
	case t.GatewayQuota > 0 && t.GatewayQuotaPeriod != "day" && t.GatewayQuotaPeriod != "month":
		return fmt.Errorf("tier %q: gateway_quota needs a gateway_quota_period of day or month", t.Name)
	case t.GatewayQuota == 0 && t.GatewayQuotaPeriod != "":
		return fmt.Errorf("tier %q: gateway_quota_period without a gateway_quota", t.Name)
	}
	return nil
}

// Tiers is the set of tiers a deployment offers, by name.
type Tiers map[string]Tier

// DefaultTiers returns the built-in tiers: basic (pool), standard (bridge), premium (silo).
func DefaultTiers() Tiers {
	return Tiers{
		"basic":    {Name: "basic", Isolation: Pool, RateLimitRPS: 50, RateLimitBurst: 100, MaxFunctionEnvironments: 2},
		"standard": {Name: "standard", Isolation: Bridge, RateLimitRPS: 200, RateLimitBurst: 400, MaxFunctionEnvironments: 8},
		"premium":  {Name: "premium", Isolation: Silo, RateLimitRPS: 1000, RateLimitBurst: 2000, MaxFunctionEnvironments: 32},
	}
}

// DefaultTier is the tier a tenant gets when its creator names none.
const DefaultTier = "basic"

// LoadTiers reads a tiers file: {"tiers":[{"name":…,"isolation":…,…},…]}.
// The file replaces the built-in set; it must define the default tier "basic".
func LoadTiers(path string) (Tiers, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenant: read tiers: %w", err)
	}
	var f struct {
		Tiers []Tier `json:"tiers"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("tenant: parse tiers %s: %w", path, err)
	}
	ts := Tiers{}
	for _, t := range f.Tiers {
		if t.Name == "" || !t.Isolation.valid() {
			return nil, fmt.Errorf("tenant: tiers %s: tier %q needs a name and an isolation of pool, bridge or silo", path, t.Name)
		}
		if err := t.validGateway(); err != nil {
			return nil, fmt.Errorf("tenant: tiers %s: %w", path, err)
		}
		if t.StreamMaxBytes < 0 || t.StreamMaxMsgs < 0 || t.StreamMaxConsumers < 0 || t.StreamPublishRPS < 0 || t.StreamPublishBurst < 0 {
			return nil, fmt.Errorf("tenant: tiers %s: tier %q: stream_max_bytes, stream_max_msgs, stream_max_consumers, stream_publish_rps and stream_publish_burst cannot be negative", path, t.Name)
		}
		if _, dup := ts[t.Name]; dup {
			return nil, fmt.Errorf("tenant: tiers %s: tier %q defined twice", path, t.Name)
		}
		ts[t.Name] = t
	}
	if _, ok := ts[DefaultTier]; !ok {
		return nil, fmt.Errorf("tenant: tiers %s: the default tier %q is missing", path, DefaultTier)
	}
	return ts, nil
}

// MaxConfigSize is the largest tenant config, in bytes.
const MaxConfigSize = 64 << 10

var domainPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// normalizeDomains lower-cases, validates and de-duplicates a domain list.
func normalizeDomains(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	if len(in) > 100 {
		return nil, errs.Field("domains", "invalid_domain", "a tenant has at most 100 domains")
	}
	for i, d := range in {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if len(d) > 253 || !domainPattern.MatchString(d) {
			return nil, errs.Field(fmt.Sprintf("domains[%d]", i), "invalid_domain", "%q is not a valid DNS name", errs.Clip(d, 80))
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}

// normalizeConfig checks that raw is a JSON object of at most MaxConfigSize bytes.
func normalizeConfig(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{}`), nil
	}
	if len(raw) > MaxConfigSize {
		return nil, &errs.Error{Kind: errs.TooLarge, Code: "config_too_large", Field: "config",
			Detail: fmt.Sprintf("config is %d bytes; the limit is %d", len(raw), MaxConfigSize)}
	}
	var obj map[string]json.RawMessage
	if !utf8.Valid(raw) {
		return nil, errs.Field("config", "invalid_config", "config must be UTF-8 JSON")
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, errs.Field("config", "invalid_config", "config must be a JSON object")
	}
	return raw, nil
}

func validName(name string) error {
	if strings.TrimSpace(name) == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > 200 ||
		strings.ContainsFunc(name, unicode.IsControl) {
		return errs.Field("name", "invalid_name", "name must be 1 to 200 characters of UTF-8 text without control characters")
	}
	return nil
}
