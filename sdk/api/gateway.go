package api

// GatewayRoute is a route of the edge gateway: requests for Host under
// PathPrefix go to Upstream, or to a silo tenant's own upstream in Silo
// when the tenant's data is placed as a silo.
type GatewayRoute struct {
	ID string `json:"id"`
	// Host is an exact host, "*.{app domain}" (every tenant subdomain) or
	// "*" (tenants' custom domains).
	Host       string            `json:"host"`
	PathPrefix string            `json:"path_prefix"`
	Upstream   string            `json:"upstream"`
	Silo       map[string]string `json:"silo,omitempty"`
	// Timeout bounds the wait for the upstream's response headers, as a
	// Go duration ("30s"); empty: 30s.
	Timeout string `json:"timeout,omitempty"`
	// Source is "file" (the routes file, read-only here) or "api".
	Source string `json:"source"`
}

// PutGatewayRoute is the body of a route's creation or replacement; its id
// is in the path.
type PutGatewayRoute struct {
	Host       string            `json:"host"`
	PathPrefix string            `json:"path_prefix"`
	Upstream   string            `json:"upstream"`
	Silo       map[string]string `json:"silo,omitempty"`
	Timeout    string            `json:"timeout,omitempty"`
}

// GatewayRouteList is every route of the gateway, by id.
type GatewayRouteList struct {
	Routes []GatewayRoute `json:"routes"`
}
