package provider

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
)

// Access tokens are JWTs with the JOSE header typ "at+jwt" (RFC 9068 §2.1),
// so that no resource server can take an ID token (typ "JWT") for one.
//
// zitadel signs its JWT access tokens (op.AccessTokenTypeJWT) with
// op.SignerFromKey, which always writes typ "JWT" and takes no header
// option. Its other access token type, a bearer token, is whatever the
// provider's Crypto returns for "<token id>:<subject>", right after the
// storage created the token's id (CreateAccessToken or
// CreateAccessAndRefreshTokens). So Bulkhead's clients ask for bearer
// tokens, the storage signs the access token JWT itself when it creates the
// id (the claims zitadel's CreateJWT would sign, typ at+jwt), and the
// provider's Crypto hands out that JWT for that id. Everything zitadel
// reads back (userinfo, introspection, revocation, token exchange) sees a
// JWT, verified as before.
type accessTokenCrypto struct {
	codes op.Crypto // zitadel's default, for authorization codes
	// signed holds the JWT made for each access token id until zitadel
	// asks for it, within the same token request.
	signed sync.Map
}

func newAccessTokenCrypto(key [32]byte) *accessTokenCrypto {
	return &accessTokenCrypto{codes: op.NewAES256GCMCrypto(key, "")}
}

// Encrypt returns the signed JWT of an access token ("<at_…>:<subject>"),
// and encrypts anything else (an authorization request id, for its code)
// as zitadel does.
func (c *accessTokenCrypto) Encrypt(s string) (string, error) {
	id, _, ok := strings.Cut(s, ":")
	if !ok || !ids.Valid(id, "at") {
		return c.codes.Encrypt(s)
	}
	if jwt, ok := c.signed.LoadAndDelete(id); ok {
		return jwt.(string), nil
	}
	// Never an encrypted bearer token in place of a JWT.
	return "", errors.New("provider: no access token was signed for this id")
}

// Decrypt refuses everything: access tokens are JWTs, which zitadel then
// verifies as such, and codes are looked up by their hash, never decrypted.
func (c *accessTokenCrypto) Decrypt(string) (string, error) {
	return "", errors.New("provider: access tokens are JWTs")
}

// AccessTokenType is the JOSE header typ of Bulkhead's access tokens.
const AccessTokenType = "at+jwt"

// signAccessToken signs the access token id of req, valid until exp, and
// keeps it for the provider's Crypto to hand out.
func (s *issuerStorage) signAccessToken(ctx context.Context, req op.TokenRequest, id string, exp time.Time) error {
	clientID := clientOf(req)
	if st := exchangeFrom(ctx); st != nil {
		clientID = st.client.ID
	}
	if clientID == "" {
		return oidc.ErrServerError()
	}
	claims := oidc.NewAccessTokenClaims(op.IssuerFromContext(ctx), req.GetSubject(), req.GetAudience(), exp, id, clientID, 0)
	var err error
	if ter, ok := req.(op.TokenExchangeRequest); ok {
		claims.Claims, err = s.GetPrivateClaimsFromTokenExchangeRequest(ctx, ter)
	} else {
		claims.Claims, err = s.GetPrivateClaimsFromRequest(ctx, req, accessTokenScopes(req.GetScopes()))
	}
	if err != nil {
		return err
	}
	jwt, err := s.p.signAccessJWT(ctx, s.issuer, claims)
	if err != nil {
		return err
	}
	s.p.crypto.signed.Store(id, jwt)
	// The scopes the client was granted, for the posture check
	// client_scope_unused (a write at most once a day per client and
	// scope): a failure costs the record, not the token.
	if err := s.p.cfg.Directory.NoteScopeUse(ctx, clientID, req.GetScopes()); err != nil {
		s.p.cfg.Logger.ErrorContext(ctx, "provider: note the client's scopes", "err", err, "client_id", clientID)
	}
	return nil
}

// signAccessJWT signs an access token's claims with issuer's active key,
// typ at+jwt.
func (p *Provider) signAccessJWT(ctx context.Context, issuer signing.Issuer, claims any) (string, error) {
	return p.signJWT(ctx, issuer, AccessTokenType, claims)
}

// signJWT signs claims with issuer's active key, with the header's typ.
func (p *Provider) signJWT(ctx context.Context, issuer signing.Issuer, typ jose.ContentType, claims any) (string, error) {
	k, err := p.cfg.Signing.Active(ctx, issuer)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: &jose.JSONWebKey{Key: k.Private, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType(typ))
	if err != nil {
		return "", err
	}
	return crypto.Sign(claims, signer)
}

// accessTokenScopes drops the scopes that only ask for userinfo claims, as
// zitadel does before it asks the storage for an access token's claims.
func accessTokenScopes(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeAddress, oidc.ScopePhone:
		default:
			out = append(out, sc)
		}
	}
	return out
}
