package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Partners: a third-party service (an integration partner) that tenants
// trust to act in their tenant. The operator registers the partner; a
// tenant's admins create a trust in it, which returns an external id
// once; the partner assumes the trust with AssumeTrust, presenting the
// external id of the tenant it acts for.

// The API's bodies for partners and trusts (package sdk/api), under this
// package's names.
type (
	CreatePartner  = api.CreatePartner
	Partner        = api.Partner
	PartnerCreated = api.PartnerCreated
	PartnerPage    = api.PartnerPage
	CreateTrust    = api.CreateTrust
	PatchTrust     = api.PatchTrust
	Trust          = api.Trust
	TrustCreated   = api.TrustCreated
	TrustPage      = api.TrustPage
)

const partnersPath = "/v1/partners"

func trustsPath(tenant string) string { return authzPath(tenant, "trusts") }

// CreatePartner registers a partner (operator). A client_secret_basic
// partner's secret is in the answer, this once.
func (c *Client) CreatePartner(ctx context.Context, in CreatePartner) (PartnerCreated, error) {
	return call[PartnerCreated](ctx, c, http.MethodPost, partnersPath, in)
}

// ListPartners returns a page of partners, by id.
func (c *Client) ListPartners(ctx context.Context, limit int, cursor string) (PartnerPage, error) {
	return call[PartnerPage](ctx, c, http.MethodGet, pagePath(partnersPath, limit, cursor), nil)
}

// GetPartner returns a partner (never its secret).
func (c *Client) GetPartner(ctx context.Context, id string) (Partner, error) {
	return call[Partner](ctx, c, http.MethodGet, itemPath(partnersPath, id), nil)
}

// DeletePartner removes a partner: its tokens stop at once.
func (c *Client) DeletePartner(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, itemPath(partnersPath, id), nil, nil, nil)
}

// RotatePartnerSecret gives a partner a new client secret (in the answer,
// this once); the old one stops at once.
func (c *Client) RotatePartnerSecret(ctx context.Context, id string) (PartnerCreated, error) {
	return call[PartnerCreated](ctx, c, http.MethodPost, itemPath(partnersPath, id)+"/secret", nil)
}

// CreateTrust makes tenant's trust in a partner; the answer holds the
// external id, this once.
func (c *Client) CreateTrust(ctx context.Context, tenant string, in CreateTrust) (TrustCreated, error) {
	return call[TrustCreated](ctx, c, http.MethodPost, trustsPath(tenant), in)
}

// ListTrusts returns a page of tenant's trusts, by id.
func (c *Client) ListTrusts(ctx context.Context, tenant string, limit int, cursor string) (TrustPage, error) {
	return call[TrustPage](ctx, c, http.MethodGet, pagePath(trustsPath(tenant), limit, cursor), nil)
}

// GetTrust returns one of tenant's trusts.
func (c *Client) GetTrust(ctx context.Context, tenant, id string) (Trust, error) {
	return call[Trust](ctx, c, http.MethodGet, itemPath(trustsPath(tenant), id), nil)
}

// UpdateTrust changes a trust.
func (c *Client) UpdateTrust(ctx context.Context, tenant, id string, in PatchTrust) (Trust, error) {
	return call[Trust](ctx, c, http.MethodPatch, itemPath(trustsPath(tenant), id), in)
}

// DeleteTrust removes a trust: its tokens stop at once.
func (c *Client) DeleteTrust(ctx context.Context, tenant, id string) error {
	return c.Do(ctx, http.MethodDelete, itemPath(trustsPath(tenant), id), nil, nil, nil)
}

// SuspendTrust stops a trust's tokens at once, and its assumption, until
// ResumeTrust (which does not bring back the tokens issued before).
func (c *Client) SuspendTrust(ctx context.Context, tenant, id string) (Trust, error) {
	return call[Trust](ctx, c, http.MethodPost, itemPath(trustsPath(tenant), id)+"/suspend", nil)
}

// ResumeTrust lets the partner assume a suspended trust again.
func (c *Client) ResumeTrust(ctx context.Context, tenant, id string) (Trust, error) {
	return call[Trust](ctx, c, http.MethodPost, itemPath(trustsPath(tenant), id)+"/resume", nil)
}

// RotateExternalID gives a trust a new external id (in the answer, this
// once): the old one, and the tokens assumed with it, stop at once.
func (c *Client) RotateExternalID(ctx context.Context, tenant, id string) (TrustCreated, error) {
	return call[TrustCreated](ctx, c, http.MethodPost, itemPath(trustsPath(tenant), id)+"/external-id", nil)
}

// PartnerTokenType is the subject_token_type of an external id.
const PartnerTokenType = "urn:bulkhead:params:oauth:token-type:external-id"

// AssumeTrust is a partner's request for a session in a tenant.
type AssumeTrust struct {
	// TokenURL is the token endpoint: the platform issuer's
	// (<public URL>/oauth/token) serves every tenant.
	TokenURL string
	// PartnerID and, for client_secret_basic, ClientSecret authenticate
	// the partner; for private_key_jwt, ClientAssertion is a JWT signed
	// with one of its keys (iss and sub the partner id, aud TokenURL, a
	// fresh jti, exp within 10 minutes).
	PartnerID       string
	ClientSecret    string
	ClientAssertion string
	Tenant          string
	ExternalID      string            // the one this tenant's trust gave
	Scopes          []string          // none: all of the trust's
	Tags            map[string]string // tags the trust lets the partner set
	// HTTPClient sends the request (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// PartnerToken is an assumed session's access token.
type PartnerToken struct {
	AccessToken string
	ExpiresAt   time.Time
	Scopes      []string
}

// OAuthError is the token endpoint's refusal (RFC 6749 §5.2).
type OAuthError struct {
	Status      int
	Code        string
	Description string
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("token endpoint: %d %s: %s", e.Status, e.Code, e.Description)
}

// AssumeTrustToken asks the token endpoint for a session in a tenant
// (RFC 8693 token exchange, the external id as subject token). A refusal
// is an *OAuthError; every refusal about the tenant, the trust or the
// external id is invalid_grant, alike.
func AssumeTrustToken(ctx context.Context, in AssumeTrust) (PartnerToken, error) {
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {in.ExternalID},
		"subject_token_type": {PartnerTokenType},
		"tenant":             {in.Tenant},
	}
	if len(in.Scopes) > 0 {
		form.Set("scope", strings.Join(in.Scopes, " "))
	}
	for k, v := range in.Tags {
		form.Add("tag", k+"="+v)
	}
	if in.ClientAssertion != "" {
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", in.ClientAssertion)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return PartnerToken{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if in.ClientAssertion == "" {
		req.SetBasicAuth(url.QueryEscape(in.PartnerID), url.QueryEscape(in.ClientSecret))
	}
	hc := in.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return PartnerToken{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return PartnerToken{}, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		json.Unmarshal(body, &e)
		return PartnerToken{}, &OAuthError{Status: resp.StatusCode, Code: e.Error, Description: e.Description}
	}
	var ok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal(body, &ok); err != nil || ok.AccessToken == "" {
		return PartnerToken{}, errors.New("token endpoint: the answer holds no access token")
	}
	return PartnerToken{AccessToken: ok.AccessToken, ExpiresAt: time.Now().Add(time.Duration(ok.ExpiresIn) * time.Second),
		Scopes: strings.Fields(ok.Scope)}, nil
}
