package api

import "time"

// DataCluster is an application PostgreSQL cluster registered with
// Bulkhead: where tenants' application data is placed. Its DSNs are sealed
// under the root key and never returned; Host says which server it is.
type DataCluster struct {
	Name string `json:"name"`
	// Host is the server and database of the serving DSN, without user or
	// password ("db.internal:5432/app").
	Host string `json:"host"`
	// Prefix begins the name of every schema, role and silo database
	// Bulkhead makes on this cluster for a tenant ("t_" by default).
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateDataCluster is the body of a cluster registration.
type CreateDataCluster struct {
	Name string `json:"name"`
	// DSN is the application's serving connection (a role that owns
	// nothing and is not a superuser or BYPASSRLS); AdminDSN is the role
	// that provisions schemas, databases and roles and runs migrations
	// (CREATEDB CREATEROLE, owner of the shared database). Neither is ever
	// returned.
	DSN      string `json:"dsn"`
	AdminDSN string `json:"admin_dsn"`
	Prefix   string `json:"prefix,omitempty"`
	// Default makes this the cluster new tenants are placed on.
	Default bool `json:"default,omitempty"`
}

// DataClusterList is every registered cluster.
type DataClusterList struct {
	Clusters []DataCluster `json:"clusters"`
	Default  string        `json:"default,omitempty"`
}

// DataPlacement says where a tenant's application data lives.
//
//   - pool: the cluster's shared Database; rows carry tenant_id and
//     row-level security compares it to the setting app.tenant_id.
//   - bridge: Schema in the shared Database, reached as Role.
//   - silo: a Database of its own, reached as Role.
type DataPlacement struct {
	TenantID string `json:"tenant_id"`
	Model    string `json:"model"` // pool, bridge or silo
	Cluster  string `json:"cluster"`
	Database string `json:"database"`
	Schema   string `json:"schema"`         // "public" in pool and silo
	Role     string `json:"role,omitempty"` // bridge and silo
	// Status is provisioning, ready or dropping.
	Status string `json:"status"`
	// Version counts the placement's changes: a tenant moved to another
	// placement gets a higher one, so a cache can tell a stale answer.
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}
