// Package identity is Bulkhead's directory of users and groups. Every user
// and group belongs to exactly one tenant; every method works in that
// tenant's storage scope and takes the tenant for its queries from the
// scope, never from a caller's string.
//
// Passwords are hashed with argon2id, the parameters recorded in each hash.
// A user created without a password gets a random temporary one, shown once
// to whoever created the user, and must change it.
//
// The OpenID provider that signs users in (and the TOTP second factor) is
// built on this directory; see the Identity issue.
package identity

import (
	"embed"
	"encoding/json"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the directory's migrations.
func Migrations() storage.Component {
	c := storage.Embedded("identity", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"identity_configs":     storage.TenantRows("tenant_id"),
		"users":                storage.TenantRows("tenant_id"),
		"user_groups":          storage.TenantRows("tenant_id"),
		"group_members":        storage.TenantRows("tenant_id"),
		"user_totp":            storage.TenantRows("tenant_id"),
		"tenant_idps":          storage.TenantRows("tenant_id"),
		"federated_identities": storage.TenantRows("tenant_id"),
		// tenant_id is the tenant a client belongs to, empty for
		// platform clients.
		"oauth_clients": storage.TenantOrPlatformRows("tenant_id"),
		// The last use of a client's scopes, the client's tenant's.
		"oauth_client_scope_use": storage.TenantOrPlatformRows("tenant_id"),
		// The platform's operators and their second factors.
		"operators":     storage.PlatformRows(),
		"operator_totp": storage.PlatformRows(),
		// How a tenant's sign-in page looks.
		"tenant_branding": storage.TenantRows("tenant_id"),
	}
	return c
}

// AdminsGroup is the group whose members administer their tenant.
const AdminsGroup = "admins"

// Bounds on a tenant's directory, so one tenant cannot fill the database.
const (
	MaxUsersPerTenant   = 100000
	MaxGroupsPerTenant  = 1000
	MaxClientsPerTenant = 1000
)

// UserStatus says whether a user may sign in.
type UserStatus string

// The user states.
const (
	UserActive   UserStatus = "active"
	UserDisabled UserStatus = "disabled"
)

// User is a person (or robot) of one tenant.
type User struct {
	ID                     string          `json:"id"`
	TenantID               tenant.ID       `json:"tenant_id"`
	Email                  string          `json:"email"`
	Status                 UserStatus      `json:"status"`
	Attributes             json.RawMessage `json:"attributes"`
	Groups                 []string        `json:"groups"`
	PasswordSet            bool            `json:"password_set"`
	PasswordChangeRequired bool            `json:"password_change_required"`
	PasswordChangedAt      time.Time       `json:"-"`              // sessions (refresh tokens) from before it end
	TOTPConfirmed          bool            `json:"totp_confirmed"` // an authenticator app is on: sign-ins ask for its code
	CreatedAt              time.Time       `json:"created_at"`
	UpdatedAt              time.Time       `json:"updated_at"`
}

// Group is a named set of users of one tenant.
type Group struct {
	ID          string    `json:"id"`
	TenantID    tenant.ID `json:"tenant_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Members     int       `json:"members"`
	CreatedAt   time.Time `json:"created_at"`
}

// MaxAttributesSize bounds a user's attributes, in bytes.
const MaxAttributesSize = 16 << 10

// reservedAttributes may not be set as user attributes: tokens carry these
// claims, and Bulkhead sets them itself, never from user-editable data.
var reservedAttributes = []string{"tenant_id", "tier", "groups", "sub", "iss", "aud", "exp", "iat", "nbf", "azp", "scope"}

var groupNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// normalizeEmail validates an email address and returns it with its lookup
// key (lower-cased: emails are unique within a tenant whatever their case).
func normalizeEmail(s string) (email, key string, err error) {
	a, perr := mail.ParseAddress(s)
	if perr != nil || a.Address != s || len(s) > 254 || !strings.Contains(s, "@") || !utf8.ValidString(s) {
		return "", "", errs.Field("email", "invalid_email", "email must be a plain address such as ann@example.com")
	}
	return s, strings.ToLower(s), nil
}

func validGroupName(name string) error {
	if !groupNamePattern.MatchString(name) {
		return errs.Field("name", "invalid_group_name", "a group name is 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit")
	}
	return nil
}

// normalizeAttributes checks that raw is a JSON object of at most
// MaxAttributesSize bytes without reserved claim names.
func normalizeAttributes(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{}`), nil
	}
	if len(raw) > MaxAttributesSize {
		return nil, &errs.Error{Kind: errs.TooLarge, Code: "attributes_too_large", Field: "attributes",
			Detail: "attributes are limited to 16 KiB"}
	}
	var obj map[string]json.RawMessage
	if !utf8.Valid(raw) || json.Unmarshal(raw, &obj) != nil || obj == nil {
		return nil, errs.Field("attributes", "invalid_attributes", "attributes must be a JSON object")
	}
	for _, k := range reservedAttributes {
		if _, ok := obj[k]; ok {
			return nil, errs.Field("attributes."+k, "reserved_attribute", "%q is a token claim that Bulkhead sets itself; it cannot be a user attribute", k)
		}
	}
	return raw, nil
}
