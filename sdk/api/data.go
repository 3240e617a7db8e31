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

// DataMigrationFile is one of the application's migrations, as the
// operator sends it: a plain SQL file named NNN_name.sql.
type DataMigrationFile struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
}

// RegisterDataMigrations is the body of PUT /v1/clusters/{name}/migrations:
// every file, those registered before first and unchanged (a file is
// written once), then the new ones.
type RegisterDataMigrations struct {
	Files []DataMigrationFile `json:"files"`
}

// DataMigration is a registered migration. Its SQL is not returned: the
// checksum (SHA-256 of the SQL, hex) says which file it is.
type DataMigration struct {
	Name      string    `json:"name"`
	Checksum  string    `json:"checksum"`
	CreatedAt time.Time `json:"created_at"`
}

// DataMigrationPlace is where the migrations are applied, and how far it
// is: the pool (the shared database's public schema, with every pool
// tenant), a bridge schema or a silo database (with its one tenant).
type DataMigrationPlace struct {
	Model    string   `json:"model"` // pool, bridge or silo
	Database string   `json:"database"`
	Schema   string   `json:"schema"`
	Tenants  []string `json:"tenants"`
	// Last is the newest migration applied there ("" if none).
	Last    string `json:"last,omitempty"`
	Pending int    `json:"pending"`
	// Error says what keeps the place from the newest migration (a file
	// that failed there, a database that could not be reached).
	Error string `json:"error,omitempty"`
}

// DataMigrationStatus is how far a cluster's placements are with its
// registered migrations.
type DataMigrationStatus struct {
	Cluster string               `json:"cluster"`
	Files   []DataMigration      `json:"files"`
	Newest  string               `json:"newest,omitempty"`
	Places  []DataMigrationPlace `json:"places"`
	// Behind are the tenants whose place is not at Newest.
	Behind []string `json:"behind"`
	// CheckedAt is when Places were read: now, or, if the places could
	// not all be read in time, the end of this node's last run.
	CheckedAt time.Time `json:"checked_at"`
	// Running is true while a run holds the cluster's migration lock
	// (on any node).
	Running bool `json:"running"`
	// LastRunAt and LastRunError are this node's last run on the cluster.
	LastRunAt    *time.Time `json:"last_run_at,omitempty"`
	LastRunError string     `json:"last_run_error,omitempty"`
}

// DataMoveProgress is how far a tier migration's move of the tenant's data
// is: from one placement model to another on one cluster.
type DataMoveProgress struct {
	// Status is copying (provisioned, copying and catching up), switched
	// (the target is the placement; the source is retained), rolled_back
	// (a verification failed: the source stayed the placement), abandoned
	// (an offboarding ended it) or dropped (what it retained is gone).
	Status     string `json:"status"`
	Cluster    string `json:"cluster"`
	From       string `json:"from"`
	To         string `json:"to"`
	RowsTotal  int64  `json:"rows_total"`  // the tenant's rows when the copy began
	RowsCopied int64  `json:"rows_copied"` // by the bulk copy
	// Lag is the count of the tenant's changes made during the copy and
	// not yet applied to the target.
	Lag int64 `json:"lag"`
	// WritePauseMS is how long the tenant's writes were fenced at the
	// cutover, in milliseconds (a decimal string).
	WritePauseMS string `json:"write_pause_ms,omitempty"`
	// Verified is each moved table's row count and checksum, the same on
	// both sides at the cutover.
	Verified            map[string]DataTableSum `json:"verified,omitempty"`
	SourceRetainedUntil time.Time               `json:"source_retained_until,omitzero"`
	Error               string                  `json:"error,omitempty"`
}

// DataTableSum is a table's row count and checksum for one tenant.
type DataTableSum struct {
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"`
}
