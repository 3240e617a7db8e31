package data

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// DefaultPrefix begins the names of what Bulkhead makes on a cluster for a
// tenant, when the operator names no prefix.
const DefaultPrefix = "t_"

// maxIdentifier is PostgreSQL's limit on an identifier, in bytes
// (NAMEDATALEN - 1): a longer name is silently truncated by the server,
// so two tenants' names could meet there if Bulkhead did not shorten them
// itself.
const maxIdentifier = 63

// hashLen is how many hex characters of SHA-256(tenant id) end a
// shortened name.
const hashLen = 10

var (
	clusterName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	prefixRule  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,15}$`)
	// hashedTail is how a shortened name ends.
	hashedTail = regexp.MustCompile(`_[0-9a-f]{10}$`)
)

// validClusterName checks a cluster's name.
func validClusterName(field, name string) error {
	if !clusterName.MatchString(name) {
		return errs.Field(field, "invalid_cluster_name",
			"a cluster name is a lower-case letter then up to 30 lower-case letters, digits or '-'")
	}
	return nil
}

// validPrefix checks a cluster's name prefix.
func validPrefix(prefix string) error {
	if !prefixRule.MatchString(prefix) {
		return errs.Field("prefix", "invalid_prefix",
			"a prefix is a lower-case letter then up to 15 lower-case letters, digits or '_'")
	}
	return nil
}

// Name is the schema (bridge), database (silo) and role (both) that a
// cluster whose prefix is prefix makes for tenant id: prefix + the id with
// '-' replaced by '_'. Tenant ids have no '_', so this is injective.
//
// A name over PostgreSQL's 63 bytes is cut to 52 and ends with '_' and 10
// hex characters of SHA-256(id). So that a plain name can never equal a
// shortened one (a tenant id of 61 characters could otherwise be chosen to
// spell another's shortened name), a plain name of exactly 63 bytes that
// already ends the way a shortened one does is shortened too: shortened
// names are all 63 bytes with the hash tail, plain ones never both. Two
// shortened names meet only if 40 bits of SHA-256 do; the placements'
// unique index refuses that tenant rather than share a name.
//
// id must be a valid tenant id and prefix a valid prefix: both reach SQL
// as quoted identifiers.
func Name(prefix string, id tenant.ID) string {
	plain := prefix + strings.ReplaceAll(string(id), "-", "_")
	if len(plain) < maxIdentifier || (len(plain) == maxIdentifier && !hashedTail.MatchString(plain)) {
		return plain
	}
	sum := sha256.Sum256([]byte(id))
	return plain[:maxIdentifier-1-hashLen] + "_" + hex.EncodeToString(sum[:])[:hashLen]
}
