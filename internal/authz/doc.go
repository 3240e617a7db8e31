// Package authz is Bulkhead's authorization service: one Cedar policy store
// per tenant, global policies that apply to every tenant, and decisions.
//
// Evaluation is github.com/cedar-policy/cedar-go. What cedar-go lacks,
// Bulkhead builds on its AST, and says so here:
//
//   - Policy templates. cedar-go parses no ?principal / ?resource slots.
//     scanStatement, a small lexer that knows Cedar's strings and comments,
//     swaps each slot for an entity of a reserved type (__S) of the same
//     length, so parser positions stay true; parseStatement then checks that
//     each slot sits once in its own scope. A linked policy is the template's
//     AST with the slot entities replaced (link). Links are stored as
//     template id + slot values and built from the current template text, so
//     editing a template changes every policy linked to it; an edit that
//     would make a link invalid under the store's schema is refused, and a
//     template with links cannot be deleted (409 template_in_use).
//   - Schema validation. cedar-go's validator is experimental
//     (x/exp/schema/validate); Bulkhead uses it as is. Its messages name no
//     source position, so Bulkhead prefixes them with the line and column of
//     the statement. A template is validated with its slot scopes widened to
//     any entity (principal is T in ?principal → principal is T); each link is
//     validated whole. Putting a schema revalidates everything in the store
//     and is refused if any policy, template or link would become invalid.
//
// Global policies live in the platform scope and are added to every tenant's
// effective policy set under ids prefixed "global/". A tenant sees their ids
// in decisions but neither their text (their evaluation errors are redacted)
// nor a way to remove them, and Cedar's rule that a forbid overrides any
// permit gives the precedence: a tenant forbid narrows a global permit, a
// tenant permit cannot undo a global forbid. Bulkhead adds one rule: a
// global forbid that cannot be evaluated on a request (an attribute the
// caller's entities leave out, say) denies instead of being skipped, so a
// tenant cannot slip past the platform's guardrails by omission.
//
// Effective sets are compiled once (concurrent misses share one load) and
// kept in a bounded LRU cache for at most five minutes. A write evicts the
// tenant's set on this node after commit and, on PostgreSQL, notifies the
// other nodes (LISTEN/NOTIFY on channel "bulkhead_authz"); a global write
// evicts every set. On PostgreSQL a node caches nothing while it does not
// listen (before Run, and from a lost connection until a new one
// listens); an idle listening connection is pinged every 30 s. Writes to
// one store are serialized by a lock on its row.
//
// Decisions are default deny. Every deny is written to the tenant's audit
// chain (action authz.decision; a batch as one authz.batch_decision that
// lists its decisions); allows too when the store's log_allows
// setting is on, and every decision the operator asks for. The entries are
// handed to the audit log's group commit without waiting for it
// (audit.Log.Enqueue), so a decision never waits for a disk flush; a crash
// can lose the entries of the last unflushed batch.
package authz
