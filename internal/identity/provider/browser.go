package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
)

// A sign-in belongs to the browser that started it. /authorize sets a
// binding cookie (reused while the browser keeps it, so sign-ins in two
// tabs both work) and the authorization request stores a hash of it; the
// login page, the federation callback and the authorize callback (which
// hands out the code) refuse a request whose cookie does not match. An
// attacker who starts an authorization and sends the victim the login
// link can therefore not collect the code after the victim signs in, and
// cannot push a sign-in of the attacker's account into the victim's
// browser either (login CSRF).
//
// The cookie is HttpOnly and SameSite=Lax: it must travel on the
// top-level navigations that bring the browser back from the client or
// from the tenant's own identity provider, and on nothing a third-party
// page can send with side effects (POSTs from other sites carry no Lax
// cookie).

const browserCookie = "bulkhead_browser"

type browserKey struct{}

// bindBrowser makes sure the browser has a binding cookie and returns r
// with the cookie's hash in its context, for CreateAuthRequest.
func (p *Provider) bindBrowser(w http.ResponseWriter, r *http.Request) *http.Request {
	v := ""
	if c, err := r.Cookie(browserCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 64 {
		v = c.Value
	} else {
		v = ids.Secret("brw")
	}
	http.SetCookie(w, &http.Cookie{Name: browserCookie, Value: v, Path: p.cookiePath(), HttpOnly: true,
		Secure: p.base.Scheme == "https", SameSite: http.SameSiteLaxMode, MaxAge: int(authRequestLifetime.Seconds()) * 4})
	return r.WithContext(context.WithValue(r.Context(), browserKey{}, browserHash(v)))
}

// cookiePath scopes the provider's cookies to its base path.
func (p *Provider) cookiePath() string {
	if p.base.Path == "" {
		return "/"
	}
	return p.base.Path
}

func browserHash(v string) string {
	h := sha256.Sum256([]byte("bulkhead-browser\x00" + v))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// browserFrom is the binding hash /authorize put in ctx ("" elsewhere).
func browserFrom(ctx context.Context) string {
	s, _ := ctx.Value(browserKey{}).(string)
	return s
}

// sameBrowser reports whether r comes from the browser that started a.
func sameBrowser(r *http.Request, a *authRequest) bool {
	c, err := r.Cookie(browserCookie)
	if err != nil || a.browser == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(browserHash(c.Value)), []byte(a.browser)) == 1
}

// otherBrowser answers a request from a browser that did not start the
// sign-in.
func otherBrowser(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "this sign-in was started in another browser (or its cookies were cleared); start again from the application",
		http.StatusForbidden)
}
