// Package tenantdb gives a SaaS application database transactions scoped
// to one tenant, in the application's own PostgreSQL, wherever Bulkhead
// placed that tenant's data:
//
//   - pool: the cluster's shared database; tables with a tenant_id column
//     have row-level security FORCEd with a policy that compares tenant_id
//     to the setting app.tenant_id.
//   - bridge: a schema of the tenant's own in the shared database, reached
//     as the tenant's role (SET ROLE).
//   - silo: a database of the tenant's own, reached as the tenant's role,
//     through a pool of its own (a bounded LRU of them; idle ones closed).
//
// The tenant comes from the context: the verified token's (sdk/auth's
// middleware), or WithTenant's for background work. A context without one
// gets ErrNoTenant, never an unscoped connection; there is no
// connection-level API at all (see below).
//
//	db, err := tenantdb.Open(tenantdb.Config{
//		Clusters: map[string]string{"app": servingDSN},
//		Resolver: tenantdb.ClientResolver{Client: client.New(bulkheadURL, serviceToken)},
//	})
//	go db.Run(ctx) // placement change notifications, idle silo pools
//	err = db.Tx(r.Context(), func(tx pgx.Tx) error {
//		_, err := tx.Exec(r.Context(), "INSERT INTO notes (body) VALUES ($1)", body) // tenant_id: DEFAULT current_setting('app.tenant_id')
//		return err
//	})
//
// # How a transaction is scoped
//
// The BEGIN itself, one simple-protocol query and so one round trip like
// a plain BEGIN, sets app.tenant_id, the role (bridge and silo) and the
// search_path with SET LOCAL: settings that last for the transaction
// only, so PostgreSQL itself drops them at COMMIT or ROLLBACK, including
// after a panic in the application's function (the transaction is rolled
// back) or a lost connection. In pool the role is the serving role and
// the path the shared schema; in bridge and silo the tenant's role and
// schema. The path holds that schema and pg_temp (last), nothing else, so
// a schema that is missing is an error (relation does not exist), never a
// fall back to public. A connection given back to the pool is checked,
// after Release has returned (pgxpool's AfterRelease), for what a
// transaction may leave on its session: a session-level app.tenant_id or
// role, a temporary schema, a cursor held past its transaction, a channel
// listened to. A connection with any of them is closed, not pooled; a new
// connection is checked the same way.
//
// # What is guaranteed
//
//   - A transaction runs for the tenant of its context only, with that
//     tenant's settings, whatever an earlier transaction on the same
//     connection did: a connection that an earlier transaction left with
//     session-level tenant settings (SET, set_config(…, false), SET ROLE),
//     a temporary table, a cursor DECLAREd WITH HOLD and left open or a
//     LISTEN is never used again (a held cursor keeps the rows it read,
//     and FETCH checks neither privilege nor policy), and the settings
//     are set in every transaction, whatever the session holds. (A transaction that makes a temporary table, even ON COMMIT
//     DROP, or leaves a held cursor open, thus costs its connection:
//     PostgreSQL keeps the session's temporary schema.)
//   - A query that forgets its WHERE tenant_id = … clause sees the
//     tenant's rows only: RLS in pool, the tenant's schema or database
//     and role in bridge and silo.
//   - A placement that is not ready, not the tenant's, or names an
//     unknown cluster fails the transaction before it begins
//     (ErrPlacementNotReady, ErrBadPlacement); a cached placement is
//     dropped when Bulkhead notifies a change (Run), after PlacementTTL,
//     or on Invalidate.
//   - A serving role that RLS would not bind (superuser, BYPASSRLS) or
//     that INHERITs the tenants' roles is refused (ErrUnsafeRole).
//
// # What is not
//
// The guarantee is against mistakes in the application and the reuse of
// connections, not against an application that runs arbitrary SQL on
// purpose. The serving role is a member of every bridge and silo
// tenant's role, so a statement inside a transaction can SET ROLE to
// another tenant's role, set app.tenant_id to another tenant, or name
// another tenant's schema; it then reads that tenant's data in that
// transaction (the next transaction on the connection is scoped anew).
// Statements the application sends on tx.Conn() after it has committed
// the transaction itself run with no tenant settings (pool rows are
// invisible, bridge and silo objects out of reach).
//
// # Why there are only transactions
//
// Settings scoped to a transaction are what PostgreSQL undoes by itself.
// A connection handed out for longer would need session-level settings,
// undone by a statement on release that a panic, a forgotten Release or
// a cancelled context skips, and that costs a round trip every time; the
// transaction form costs none.
package tenantdb
