package provider_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// get fetches u with c without following redirects and returns the
// status, the Location and the body.
func get(t *testing.T, c *http.Client, u string) (int, string, string) {
	t.Helper()
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// TestSignInBoundToBrowser is the first finding of the second hardening
// issue: a finished sign-in handed its code to any caller of the authorize
// callback. Every step now belongs to the browser that started it.
func TestSignInBoundToBrowser(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		f.user(t, "acme", "mal@acme.example", "mal's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
		authURL := func() string {
			return conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		}
		noCookies := &http.Client{Timeout: 10 * time.Second}

		// 1. The attacker starts a sign-in and sends the victim its login
		// link: the victim's browser is refused before any password.
		mal := newBrowser(t, redirectURI)
		_, loginURL, _ := get(t, mal.client, authURL())
		if !strings.Contains(loginURL, "authRequestID=") {
			t.Fatalf("no login redirect: %q", loginURL)
		}
		login := f.env.URL + loginURL
		victim := newBrowser(t, redirectURI)
		if status, _, body := get(t, victim.client, login); status != http.StatusForbidden || !strings.Contains(body, "another browser") {
			t.Errorf("the victim opened the attacker's sign-in: %d %s", status, body)
		}
		// Posting the form from another browser (with the form's own
		// fields, as a cross-site form post would) is refused too.
		_, _, page := get(t, mal.client, login)
		fields := url.Values{"email": {"ann@acme.example"}, "password": {"ann's long password"}}
		for _, m := range hidden.FindAllStringSubmatch(page, -1) {
			fields.Set(m[1], m[2])
		}
		resp, err := victim.client.PostForm(login, fields)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a sign-in posted from another browser: %d", resp.StatusCode)
		}

		// 2. A finished sign-in's callback gives the code to its browser
		// only: not to a client without cookies, not to another browser
		// (login CSRF: the attacker's finished sign-in pushed into the
		// victim's browser).
		mal.stopAt = f.env.URL + "/authorize/callback"
		_, _, status := mal.signIn(authURL(), "mal@acme.example", "mal's long password", "")
		if status != http.StatusFound {
			t.Fatalf("mal's own sign-in: %d", status)
		}
		cb := mal.lastLocation
		if !strings.Contains(cb, "/authorize/callback?id=") {
			t.Fatalf("no callback: %q", cb)
		}
		for name, c := range map[string]*http.Client{"no cookies": noCookies, "another browser": victim.client} {
			if status, loc, _ := get(t, c, f.env.URL+cb); status != http.StatusForbidden || strings.Contains(loc, "code=") {
				t.Errorf("%s at the callback: %d %s", name, status, loc)
			}
		}
		if _, loc, _ := get(t, mal.client, f.env.URL+cb); !strings.Contains(loc, "code=") {
			t.Errorf("the browser that signed in got no code: %s", loc)
		}

		// 3. Two sign-ins in two tabs of one browser both complete: the
		// second tab's, once the first signed in, from the browser's session.
		ann := newBrowser(t, redirectURI)
		_, l1, _ := get(t, ann.client, authURL())
		_, l2, _ := get(t, ann.client, authURL())
		if code, page, _ := ann.signIn(f.env.URL+l2, "ann@acme.example", "ann's long password", ""); code == "" {
			t.Errorf("tab 2: %s", page)
		}
		_, cb1, _ := get(t, ann.client, f.env.URL+l1)
		if _, loc, _ := get(t, ann.client, f.env.URL+cb1); !strings.Contains(loc, "code=") {
			t.Errorf("tab 1 after tab 2 signed in: %s then %s", cb1, loc)
		}
	})
}
