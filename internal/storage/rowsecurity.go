package storage

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Rows says whose a table's rows are: from it, a migration gives the table
// its row-level security on PostgreSQL (Component.RowSecurity). Every such
// table has it ENABLEd and FORCEd (so the table's owner is bound too), and
// these policies, which read the scope Tx sets:
//
//	tenant_scope    the rows of the transaction's tenant (TenantRows and
//	                TenantOrPlatformRows only)
//	platform_scope  every row, in the platform scope
//
// A transaction of no tenant sees no row (but see TenantRows). Make a Rows with
// TenantRows, TenantOrPlatformRows or PlatformRows.
type Rows struct {
	column   string // holds the id of the tenant a row is of; "" for the platform's table
	platform bool   // rows whose column is empty are the platform's
}

// TenantRows is for a table each of whose rows is one tenant's, the one
// column names: a tenant-scoped transaction sees and writes only its
// tenant's rows. Every row must name a tenant: a row whose column is empty
// would be seen by a transaction whose tenant is empty (TenantScope("")),
// so a table with such rows is TenantOrPlatformRows.
func TenantRows(column string) Rows { return Rows{column: column} }

// TenantOrPlatformRows is TenantRows for a table that also holds the
// platform's own rows, those whose column is empty (a platform client, the
// platform issuer's key, a global policy): no tenant scope sees them, not
// even that of a transaction whose tenant is empty.
func TenantOrPlatformRows(column string) Rows { return Rows{column: column, platform: true} }

// PlatformRows is for a table that is the platform's alone: no tenant
// scope sees any of its rows.
func PlatformRows() Rows { return Rows{} }

// identifier is what a table or column name in RowSecurity may be: the
// names are written into SQL unquoted.
var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// createTable finds the tables a migration creates.
var createTable = regexp.MustCompile(`(?im)^[ \t]*CREATE[ \t]+TABLE[ \t]+(?:IF[ \t]+NOT[ \t]+EXISTS[ \t]+)?([a-z_][a-z0-9_]*)\b`)

// statements returns the SQL that gives table its row-level security.
func (r Rows) statements(table string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nALTER TABLE %s ENABLE ROW LEVEL SECURITY;\n", table)
	fmt.Fprintf(&b, "ALTER TABLE %s FORCE ROW LEVEL SECURITY;\n", table)
	switch {
	case r.column != "" && r.platform:
		fmt.Fprintf(&b, "CREATE POLICY tenant_scope ON %s USING (%s <> '' AND %[2]s = current_setting('bulkhead.tenant_id', true));\n", table, r.column)
	case r.column != "":
		fmt.Fprintf(&b, "CREATE POLICY tenant_scope ON %s USING (%s = current_setting('bulkhead.tenant_id', true));\n", table, r.column)
	}
	fmt.Fprintf(&b, "CREATE POLICY platform_scope ON %s USING (current_setting('bulkhead.platform', true) = 'on');\n", table)
	return b.String()
}

// addRowSecurity appends to each of the PostgreSQL migrations ms the row
// security of the tables in c.RowSecurity that it creates, in the order it
// creates them. Each of those tables must be created by exactly one of ms.
func (c Component) addRowSecurity(ms []migration) error {
	created := map[string]int{} // table → index in ms
	for i, m := range ms {
		var add strings.Builder
		for _, match := range createTable.FindAllStringSubmatch(m.sql, -1) {
			table := strings.ToLower(match[1])
			r, ok := c.RowSecurity[table]
			if !ok {
				continue
			}
			if j, dup := created[table]; dup {
				return fmt.Errorf("storage: migration %s: table %s, which RowSecurity names, is created by both %s and %s",
					c.Name, table, ms[j].name, m.name)
			}
			created[table] = i
			add.WriteString(r.statements(table))
		}
		ms[i].sql += add.String()
	}
	tables := make([]string, 0, len(c.RowSecurity))
	for table := range c.RowSecurity {
		tables = append(tables, table)
	}
	slices.Sort(tables)
	for _, table := range tables {
		if col := c.RowSecurity[table].column; !identifier.MatchString(table) || col != "" && !identifier.MatchString(col) {
			return fmt.Errorf("storage: migrations of %s: RowSecurity names table %q (column %q); want lower-case SQL identifiers", c.Name, table, col)
		}
		if _, ok := created[table]; !ok {
			return fmt.Errorf("storage: migrations of %s: RowSecurity names table %s, which none of its postgres migrations creates", c.Name, table)
		}
	}
	return nil
}
