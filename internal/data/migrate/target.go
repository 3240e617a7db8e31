package migrate

import (
	"regexp"
	"slices"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// The isolation models of a placement (api.DataPlacement.Model).
const (
	Pool   = "pool"
	Bridge = "bridge"
	Silo   = "silo"
)

// Target is one tenant's placement, as the placements service knows it:
// where its data is and the role it is reached as.
//
//   - pool: Database is the cluster's shared database, Schema "public",
//     no Role; every pool tenant has the same one.
//   - bridge: Schema (not public) in the shared database, reached as Role.
//   - silo: Database of its own, Schema "public", reached as Role.
type Target struct {
	TenantID, Model, Database, Schema, Role string
}

// Place is where migrations are applied: a schema in a database, with the
// tenants whose data is there (every pool tenant for the pool; one tenant
// for a bridge schema or silo database).
type Place struct {
	Model, Database, Schema string
	Role                    string   // who gets DML on new tables (the serving role for the pool)
	Tenants                 []string // sorted
}

func (p Place) String() string {
	if p.Model == Bridge {
		return "bridge schema " + p.Schema + " (database " + p.Database + ")"
	}
	return p.Model + " database " + p.Database
}

// name is what a database, schema or role Bulkhead placed may be called:
// the cluster's prefix followed by a tenant id with '-' turned into '_', or
// a shortened form of that (DESIGN: data placements).
var name = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// places checks targets against the cluster and groups them by the schema
// they are in, the pool first (it is migrated before the others: a file
// that fails there stops the run before any tenant's schema is touched),
// then the others in the order of their database and schema.
//
// It refuses what a tampered or mistaken placement could make it touch
// beyond the tenants' own: a bridge schema or silo database or role that
// is not named with the cluster's prefix, a silo on the shared database,
// one schema or database claimed by two tenants.
func places(c Cluster, targets []Target) ([]Place, error) {
	pool := Place{Model: Pool, Database: c.SharedDatabase, Schema: "public", Role: c.ServingRole}
	byKey := map[[2]string]*Place{}
	var out []*Place
	for _, t := range targets {
		if _, err := tenant.ParseID(t.TenantID); err != nil {
			return nil, invalid("target of tenant %q: not a tenant id", t.TenantID)
		}
		if t.Schema == "" {
			t.Schema = "public"
		}
		switch t.Model {
		case Pool:
			if t.Database != c.SharedDatabase || t.Schema != "public" || t.Role != "" {
				return nil, invalid("pool target of tenant %s: want the shared database %s, schema public and no role", t.TenantID, c.SharedDatabase)
			}
			pool.Tenants = append(pool.Tenants, t.TenantID)
			continue
		case Bridge:
			if t.Database != c.SharedDatabase || !c.owned(t.Schema) {
				return nil, invalid("bridge target of tenant %s: want a schema named %s… in the shared database %s", t.TenantID, c.Prefix, c.SharedDatabase)
			}
		case Silo:
			if t.Database == c.SharedDatabase || !c.owned(t.Database) || t.Schema != "public" {
				return nil, invalid("silo target of tenant %s: want a database named %s… with schema public", t.TenantID, c.Prefix)
			}
		default:
			return nil, invalid("target of tenant %s: model %q is not pool, bridge or silo", t.TenantID, t.Model)
		}
		if !c.owned(t.Role) {
			return nil, invalid("%s target of tenant %s: want a role named %s…", t.Model, t.TenantID, c.Prefix)
		}
		key := [2]string{t.Database, t.Schema}
		if p, dup := byKey[key]; dup {
			return nil, invalid("tenants %s and %s have the same %s", p.Tenants[0], t.TenantID, p)
		}
		p := &Place{Model: t.Model, Database: t.Database, Schema: t.Schema, Role: t.Role, Tenants: []string{t.TenantID}}
		byKey[key] = p
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Place) int {
		return strings.Compare(a.Database+"\x00"+a.Schema, b.Database+"\x00"+b.Schema)
	})
	slices.Sort(pool.Tenants)
	pool.Tenants = slices.Compact(pool.Tenants)
	all := []Place{pool}
	for _, p := range out {
		all = append(all, *p)
	}
	return all, nil
}

// owned reports whether a schema, database or role name is one the
// cluster's placements make.
func (c Cluster) owned(s string) bool {
	return name.MatchString(s) && strings.HasPrefix(s, c.Prefix) && len(s) > len(c.Prefix)
}
