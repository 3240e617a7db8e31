package api

import (
	"encoding/json"
	"errors"
	"time"
)

// User is a user of a tenant as the API returns it.
type User struct {
	ID                     string          `json:"id"`
	TenantID               string          `json:"tenant_id"`
	Email                  string          `json:"email"`
	Status                 string          `json:"status"` // active or disabled
	Attributes             json.RawMessage `json:"attributes"`
	Groups                 []string        `json:"groups"`
	PasswordSet            bool            `json:"password_set"`
	PasswordChangeRequired bool            `json:"password_change_required"`
	TOTPConfirmed          bool            `json:"totp_confirmed"` // an authenticator app is on: sign-ins ask for its code
	CreatedAt              time.Time       `json:"created_at"`
	UpdatedAt              time.Time       `json:"updated_at"`

	// TemporaryPassword is only in the answer of a create that was given
	// no password: shown once.
	TemporaryPassword string `json:"temporary_password,omitempty"`
}

// CreateUser is the body of a user creation. Without a password the answer
// carries a temporary one, once.
type CreateUser struct {
	Email      string          `json:"email"`
	Password   string          `json:"password,omitempty"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
	Groups     []string        `json:"groups,omitempty"`
}

// PatchUser is a partial update of a user; nil fields are left alone.
type PatchUser struct {
	Email      *string         `json:"email,omitempty"`
	Status     *string         `json:"status,omitempty"` // active or disabled
	Attributes json.RawMessage `json:"attributes,omitempty"`
	Password   *string         `json:"password,omitempty"`
}

// UserPage is a page of users.
type UserPage struct {
	Items      []User `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// Group is a group of a tenant.
type Group struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Members     int       `json:"members"`
	CreatedAt   time.Time `json:"created_at"`
}

// CreateGroup is the body of a group creation.
type CreateGroup struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// Client is an OAuth client registered with Bulkhead's OpenID provider: a
// tenant's, or a platform client (TenantID empty).
type Client struct {
	ClientID     string   `json:"client_id"`
	TenantID     string   `json:"tenant_id,omitempty"`
	Name         string   `json:"name"`
	GrantTypes   []string `json:"grant_types"`
	RedirectURIs []string `json:"redirect_uris"`
	Scopes       []string `json:"scopes"`
	Public       bool     `json:"public"` // no secret; PKCE with S256 required
	// BackchannelLogoutURI, if set, is told when a browser session that
	// signed in to the client ends (OpenID Connect Back-Channel Logout 1.0).
	BackchannelLogoutURI string    `json:"backchannel_logout_uri,omitempty"`
	CreatedAt            time.Time `json:"created_at"`

	// ClientSecret is only in the answer of a create: shown once.
	ClientSecret string `json:"client_secret,omitempty"`
}

// CreateClient is the body of a client registration.
type CreateClient struct {
	Name         string   `json:"name"`
	GrantTypes   []string `json:"grant_types"`
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	Public       bool     `json:"public,omitempty"`
	// BackchannelLogoutURI: https (http on loopback only), no fragment.
	BackchannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`
}

// IdentityConfig is a tenant's identity configuration. Zero lifetimes mean
// the provider's defaults.
type IdentityConfig struct {
	PasswordMinLength    int      `json:"password_min_length"`
	AccessTokenLifetime  Duration `json:"access_token_lifetime"`
	RefreshTokenLifetime Duration `json:"refresh_token_lifetime"`
}

// IdentityConfigPatch changes some of a tenant's identity configuration;
// nil fields are left alone.
type IdentityConfigPatch struct {
	PasswordMinLength    *int      `json:"password_min_length,omitempty"`
	AccessTokenLifetime  *Duration `json:"access_token_lifetime,omitempty"`
	RefreshTokenLifetime *Duration `json:"refresh_token_lifetime,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("15m").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON reads a duration string such as "15m" or "720h".
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return errors.New(`a duration is a string such as "15m"`)
	}
	v, err := time.ParseDuration(string(b[1 : len(b)-1]))
	if err != nil {
		return errors.New(`a duration is a string such as "15m"`)
	}
	*d = Duration(v)
	return nil
}

// IdP is a tenant's upstream OpenID provider. The client secret is stored
// wrapped by the root key and never returned.
type IdP struct {
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	IdPSettings
}

// IdPSettings are a tenant's choices about what its provider's word is
// worth. Both are off by default: each trades some of the account's own
// protection for convenience, so only the tenant can decide it.
type IdPSettings struct {
	// LinkExistingByEmail lets the first sign-in of an upstream identity
	// take over the existing account with the same email, when the
	// provider asserts email_verified: true. Off, a new upstream identity
	// whose email is taken is refused (an admin resolves it).
	LinkExistingByEmail bool `json:"link_existing_by_email"`
	// UpstreamMFASufficient accepts the provider's sign-in without the
	// account's own confirmed TOTP factor. Off, the login page asks for
	// the code after the provider returns.
	UpstreamMFASufficient bool `json:"upstream_mfa_sufficient"`
}

// IdPRequest configures a tenant's upstream provider. It replaces the
// whole configuration: settings left out are off.
type IdPRequest struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	IdPSettings
}

// TOTPEnrollment is what an enrollment of a second factor shows once: the
// secret for the authenticator app and the recovery codes.
type TOTPEnrollment struct {
	Secret        string   `json:"secret"`
	OTPAuthURL    string   `json:"otpauth_url"`
	RecoveryCodes []string `json:"recovery_codes"`
}

// TOTPConfirmation is the body of an enrollment's confirmation: a current
// code of the authenticator app.
type TOTPConfirmation struct {
	Code string `json:"code"`
}

// Operator is a person who operates the platform (not a tenant's user).
type Operator struct {
	ID                     string    `json:"id"`
	Email                  string    `json:"email"`
	Name                   string    `json:"name"`
	Status                 string    `json:"status"` // active or disabled
	PasswordChangeRequired bool      `json:"password_change_required"`
	TOTPConfirmed          bool      `json:"totp_confirmed"`
	CreatedAt              time.Time `json:"created_at"`
}

// CreateOperator is the body of an operator's creation.
type CreateOperator struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// CreatedOperator is a new operator with their temporary password and the
// TOTP enrollment every operator has, both shown once: the operator scans
// the otpauth URL, and chooses their own password at first sign-in, where
// their first code confirms the factor.
type CreatedOperator struct {
	Operator
	Password string         `json:"password"`
	TOTP     TOTPEnrollment `json:"totp"`
}

// Branding is how a tenant's sign-in page looks to its users: set by the
// tenant's admins. Every field is optional.
type Branding struct {
	// DisplayName replaces the tenant's name on the page (1 to 100
	// characters).
	DisplayName string `json:"display_name,omitempty"`
	// Logo is a PNG or JPEG image, base64 (at most 32 KiB decoded, 512 ×
	// 512 pixels).
	Logo string `json:"logo,omitempty"`
	// PrimaryColor (#rrggbb) colours the page's button and links; it must
	// contrast with white at 4.5:1 at least (WCAG AA), as white text sits
	// on it.
	PrimaryColor string `json:"primary_color,omitempty"`
	// SupportURL is where the page sends users who cannot sign in: an
	// https: or mailto: URL.
	SupportURL string    `json:"support_url,omitempty"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`
}

// Session is a browser session (single sign-on) of a user: where they
// are signed in, and how.
type Session struct {
	ID       string    `json:"id"` // the sid of its ID tokens
	TenantID string    `json:"tenant_id"`
	UserID   string    `json:"user_id"`
	AMR      []string  `json:"amr"` // pwd, otp, fed
	ACR      string    `json:"acr"`
	AuthTime time.Time `json:"auth_time"`
	LastSeen time.Time `json:"last_seen"`
	// ExpiresAt is the absolute end; idle sessions end before it.
	ExpiresAt time.Time `json:"expires_at"`
	// Clients are the applications it signed in to.
	Clients []string `json:"clients"`
}
