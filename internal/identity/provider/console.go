package provider

import (
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
)

// The web console (package console) signs people in like any other
// application: code flow with PKCE, as a public client, at the platform
// issuer, or at a silo tenant's own issuer for that tenant's admins. Its registration is built in rather than stored, so nobody can
// delete it, change its redirect URI or read a secret of it: it has none.

// ConsoleClientID is the built-in console client's id. It is not of the
// form of registered clients' ids (cli_…), so none can take it.
const ConsoleClientID = "bulkhead-console"

// OperatorScope asks the platform issuer to sign in an operator (a person
// of the platform's operator directory) instead of a tenant's user. Only
// the console client may ask for it.
const OperatorScope = identity.OperatorScope

// ConsoleCallbackPath and ConsolePath are under the public URL's path.
const (
	ConsolePath         = "/console/"
	ConsoleCallbackPath = "/console/callback"
)

// ConsoleClient is the console's registration: public, PKCE with S256,
// one redirect URI under the public URL, and the scopes the console asks
// for. Its tokens call the API for the signed-in person (APIScope).
func (p *Provider) ConsoleClient() identity.Client {
	base := p.base.String()
	return identity.Client{ID: ConsoleClientID, Name: "Bulkhead console", Public: true,
		GrantTypes:   []string{string(oidc.GrantTypeCode), string(oidc.GrantTypeRefreshToken)},
		RedirectURIs: []string{base + ConsoleCallbackPath},
		Scopes:       []string{oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeOfflineAccess, APIScope, OperatorScope},
		CreatedAt:    time.Unix(0, 0).UTC()}
}
