package authn

import (
	"context"
	"slices"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
)

// Operator accounts are people of the platform's operator directory. They
// sign in to the console through the platform issuer, which gives the
// console's client an access token whose subject is the account (opr_…),
// with no tenant. Only the API accepts such a token, as an operator's
// credential naming the person; the gateway and the event streams, whose
// TenantTokens have no operator accounts, refuse it like any platform
// token.

// OperatorState is what the records say of an operator account now.
type OperatorState interface {
	// OperatorActive returns when the account's password last changed;
	// an error if the account is disabled or gone.
	OperatorActive(ctx context.Context, id string) (passwordChangedAt time.Time, err error)
}

type operatorAccounts struct {
	state           OperatorState
	clientID, scope string
}

// WithOperators returns a verifier that also takes operator accounts'
// tokens: issued by the platform issuer to clientID with scope (the
// console's client and the operator scope), to an account that is still
// active and has not changed its password since. It shares t's
// validator and cache.
func (t *TenantTokens) WithOperators(state OperatorState, clientID, scope string) *TenantTokens {
	c := *t
	c.operators = &operatorAccounts{state: state, clientID: clientID, scope: scope}
	return &c
}

// operatorContext is ctx carrying the operator principal of the validated
// platform token c, or an error when c is no operator account's token.
func (t *TenantTokens) operatorContext(ctx context.Context, c *auth.Claims) (context.Context, error) {
	o := t.operators
	refused := errs.E(errs.Unauthenticated, "invalid_token", "a platform client's token does not act for a tenant")
	if o == nil || !ids.Valid(c.Subject, "opr") {
		return nil, refused
	}
	if c.ClientID != o.clientID || c.Actor != "" || c.Issuer != t.v.Issuer() || !slices.Contains(c.Scopes, o.scope) {
		return nil, refused
	}
	if t.state.Revoked(ctx, c.ID) {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token was revoked")
	}
	changed, err := o.state.OperatorActive(ctx, c.Subject)
	if err != nil {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token's operator cannot sign in")
	}
	if c.IssuedAt.IsZero() || c.IssuedAt.Before(changed.Truncate(time.Second)) {
		// A password change (say, after a compromise) ends the sessions before it.
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token predates the operator's password change")
	}
	return WithOperator(ctx, Operator{Account: c.Subject}), nil
}
