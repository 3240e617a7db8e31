package api

import "time"

// Placement says how the proxy presents a connection's token to the
// upstream.
type Placement struct {
	Type string `json:"type"`           // bearer (the default, also ""), header or query
	Name string `json:"name,omitempty"` // the header or query parameter (header, query)
}

// ConnectionAlerts are a connection's anomaly settings.
type ConnectionAlerts struct {
	// Sensitivity is how far (in deviations of a grant's baseline, at least
	// half the baseline's mean) its traffic may go before it raises an
	// alert: 1 (most sensitive) to 50; 0 asks for the default, 4.
	Sensitivity float64 `json:"sensitivity,omitempty"`
	// WebhookURL, when set, receives each alert as a signed POST.
	WebhookURL string `json:"webhook_url,omitempty"`
}

// Connection is a tenant's connection to a third-party API. It never holds
// the token.
type Connection struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Name        string    `json:"name"`
	UpstreamURL string    `json:"upstream_url"`
	Placement   Placement `json:"placement"`
	// AllowedMethods are the methods integrations may use (empty: every
	// method).
	AllowedMethods []string `json:"allowed_methods"`
	// AllowedPaths are path prefixes under the upstream URL that
	// integrations may call (empty: every path).
	AllowedPaths []string         `json:"allowed_paths"`
	Alerts       ConnectionAlerts `json:"alerts"`
	// TokenVersion counts the token's replacements (1 for the first).
	TokenVersion int       `json:"token_version"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// ConnectionPage is a page of connections, by id.
type ConnectionPage struct {
	Items      []Connection `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

// GrantOptions are the settings of a new grant.
type GrantOptions struct {
	// Name says which integration the grant is for (optional; 1 to 100 of
	// A-Z a-z 0-9 . _ -).
	Name string `json:"name,omitempty"`
	// AutoSuspend makes an anomaly alert suspend the grant.
	AutoSuspend bool `json:"auto_suspend,omitempty"`
}

// CreateConnection is the body of a connection creation.
type CreateConnection struct {
	// Name is unique in the tenant: 1 to 100 of A-Z a-z 0-9 . _ -.
	Name string `json:"name"`
	// UpstreamURL is http(s)://host[:port][/path prefix], without
	// userinfo, query or fragment; the proxy sends requests there only.
	UpstreamURL string `json:"upstream_url"`
	// Token is the upstream token (visible ASCII, at most 8192 bytes): it
	// is split at once and never stored whole.
	Token          string           `json:"token"`
	Placement      Placement        `json:"placement"`
	AllowedMethods []string         `json:"allowed_methods,omitempty"`
	AllowedPaths   []string         `json:"allowed_paths,omitempty"`
	Alerts         ConnectionAlerts `json:"alerts"`
	// Grant sets the connection's first grant, made with it.
	Grant GrantOptions `json:"grant"`
}

// ConnectionCreated is a new connection with its first grant, whose Part A
// is shown this once, and the signing secret of its alert webhook, if it
// has one (shown this once too).
type ConnectionCreated struct {
	Connection
	Grant         IssuedGrant `json:"grant"`
	WebhookSecret string      `json:"webhook_secret,omitempty"`
}

// UpdateConnection is a partial update of a connection; nil fields are
// left alone. A new Token re-splits every grant: each gets a new Part A
// and the old ones stop working. UpstreamURL changes only with Token, so
// that a token is never sent to a host it was not given for. Alerts
// replaces both settings (a WebhookURL left empty removes the webhook).
type UpdateConnection struct {
	Name           *string           `json:"name,omitempty"`
	UpstreamURL    *string           `json:"upstream_url,omitempty"`
	Token          *string           `json:"token,omitempty"`
	Placement      *Placement        `json:"placement,omitempty"`
	AllowedMethods *[]string         `json:"allowed_methods,omitempty"`
	AllowedPaths   *[]string         `json:"allowed_paths,omitempty"`
	Alerts         *ConnectionAlerts `json:"alerts,omitempty"`
}

// ConnectionUpdated is a changed connection; after a token replacement,
// its grants with their new Part As (shown this once), and the signing
// secret of a new alert webhook.
type ConnectionUpdated struct {
	Connection
	Grants        []IssuedGrant `json:"grants,omitempty"`
	WebhookSecret string        `json:"webhook_secret,omitempty"`
}

// Grant is one integration's access to a connection.
type Grant struct {
	ID           string `json:"id"`
	ConnectionID string `json:"connection_id"`
	Name         string `json:"name,omitempty"`
	Status       string `json:"status"` // active, or suspended (its Part A is refused)
	AutoSuspend  bool   `json:"auto_suspend"`
	// SuspendedReason says why a suspended grant was suspended.
	SuspendedReason string     `json:"suspended_reason,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	RotatedAt       *time.Time `json:"rotated_at,omitempty"`
}

// IssuedGrant is a grant with its Part A, shown once: the integration's
// bearer token at the proxy.
type IssuedGrant struct {
	Grant
	PartA string `json:"part_a"`
}

// TokenSource brings a connection's token to a request that needs it
// whole (Bulkhead keeps only Part Bs): either Token, the upstream token
// (checked against the connection's), or PartA, a current Part A of an
// active grant of the connection. Not both.
type TokenSource struct {
	Token string `json:"token,omitempty"`
	PartA string `json:"part_a,omitempty"`
}

// CreateGrant is the body of a grant creation: the new grant's settings
// (as GrantOptions) and the token (as TokenSource). Its fields are its
// own, not embedded, so that the server names a bad one as the client
// sent it ("name", not "GrantOptions.name").
type CreateGrant struct {
	Name        string `json:"name,omitempty"`
	AutoSuspend bool   `json:"auto_suspend,omitempty"`
	Token       string `json:"token,omitempty"`
	PartA       string `json:"part_a,omitempty"`
}

// SuspendGrant is the optional body of a grant's suspension.
type SuspendGrant struct {
	Reason string `json:"reason,omitempty"`
}

// Alert is an anomaly of a grant's traffic.
type Alert struct {
	ID           string `json:"id"`
	TenantID     string `json:"tenant_id"`
	ConnectionID string `json:"connection_id"`
	GrantID      string `json:"grant_id"`
	// Kind is request_rate, bytes_out, distinct_paths or new_network.
	Kind   string            `json:"kind"`
	Detail map[string]string `json:"detail"`
	// GrantSuspended reports that the alert suspended the grant (its
	// AutoSuspend was set).
	GrantSuspended bool      `json:"grant_suspended"`
	CreatedAt      time.Time `json:"created_at"`
}

// AlertPage is a page of alerts, newest first.
type AlertPage struct {
	Items      []Alert `json:"items"`
	NextCursor string  `json:"next_cursor"`
}
