package provider

import (
	"net/http"
	"slices"
	"strings"

	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
)

// userinfo serves an issuer's userinfo endpoint. Its errors are those of
// RFC 6750 §3: no token is a bare Bearer challenge, a token that is not a
// live access token of this issuer is invalid_token, one without the
// openid scope insufficient_scope.
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider) {
	ctx := op.ContextWithIssuer(r.Context(), p.issuerURL(issuer))
	w.Header().Set("Cache-Control", "no-store")
	challenge := func(status int, code, desc string) {
		v := `Bearer realm="` + realm + `"`
		if code != "" {
			v += `, error="` + code + `", error_description="` + desc + `"`
			if code == "insufficient_scope" {
				v += `, scope="openid"`
			}
		}
		w.Header().Set("WWW-Authenticate", v)
		if code == "" {
			w.WriteHeader(status)
			return
		}
		httphelper.MarshalJSONWithStatus(w, map[string]string{"error": code, "error_description": desc}, status)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		httphelper.MarshalJSONWithStatus(w, map[string]string{"error": "invalid_request", "error_description": "userinfo takes GET or POST"},
			http.StatusMethodNotAllowed)
		return
	}
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(t) == "" {
			httphelper.MarshalJSONWithStatus(w, map[string]string{"error": "invalid_request",
				"error_description": `the Authorization header must be "Bearer <token>"`}, http.StatusBadRequest)
			return
		}
		token = strings.TrimSpace(t)
	} else if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err == nil {
			token = r.PostForm.Get("access_token")
		}
	}
	if token == "" {
		challenge(http.StatusUnauthorized, "", "")
		return
	}
	const invalid = "the access token is invalid, expired or revoked"
	c, err := p.accessToken(ctx, o, token)
	if err != nil {
		challenge(http.StatusUnauthorized, "invalid_token", invalid)
		return
	}
	s := &issuerStorage{p: p, issuer: issuer}
	if s.revoked(ctx, c.JWTID) || !(ids.Valid(c.Subject, "usr") || ids.Valid(c.Subject, "opr")) {
		challenge(http.StatusUnauthorized, "invalid_token", invalid)
		return
	}
	if _, err := s.registeredClient(ctx, c.ClientID); err != nil {
		challenge(http.StatusUnauthorized, "invalid_token", invalid) // a deleted client's tokens are dead
		return
	}
	if !slices.Contains(c.Scopes, oidc.ScopeOpenID) {
		challenge(http.StatusForbidden, "insufficient_scope", "userinfo needs a token with the openid scope")
		return
	}
	tid, err := p.userTenant(ctx, c.Subject)
	if err != nil {
		challenge(http.StatusUnauthorized, "invalid_token", invalid)
		return
	}
	info := new(oidc.UserInfo)
	if err := s.setUserinfo(ctx, info, tid, c.Subject, c.Scopes); err != nil {
		challenge(http.StatusUnauthorized, "invalid_token", invalid)
		return
	}
	httphelper.MarshalJSON(w, info)
}
