package provider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestFederationDoesNotTakeOverAccounts is finding 1 of the federation
// attack: an upstream ID token whose email_verified was missing, or the
// string "false", or whose email came from userinfo, signed its bearer in
// as the tenant's existing admin with that email, password and TOTP
// skipped. Federated users are now linked by the upstream's (issuer,
// subject); an existing account is linked by email only when the upstream
// asserts the boolean email_verified: true and the tenant allowed it; and
// the account's own TOTP factor is still asked for unless the tenant
// takes the upstream's sign-in as enough.
func TestFederationDoesNotTakeOverAccounts(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		// Each browser comes from an address of its own, so the many
		// sign-ins here stay under the login page's per-address throttle.
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, TrustedProxies: []string{"127.0.0.1"}}), ctx: context.Background()}
		browsers := 0
		fresh := func() *browser {
			browsers++
			b := newBrowser(t, redirectURI)
			b.client.Transport = fromAddress{fmt.Sprintf("198.51.100.%d", browsers), http.DefaultTransport}
			return b
		}
		f.tenant(t, "bridge-co", "standard", "bridge.example")
		ann := f.user(t, "bridge-co", "ann@bridge.example", "ann's long password", "admins")
		enrollment, err := f.env.Directory.EnrollTOTP(f.ctx, "bridge-co", ann.ID, op)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := totp.GenerateCode(enrollment.Secret, time.Now())
		if err := f.env.Directory.ConfirmTOTP(f.ctx, "bridge-co", ann.ID, first, op); err != nil {
			t.Fatal(err)
		}
		up := newUpstreamIdP(t)
		setIdP := func(s identity.IdPSettings) {
			t.Helper()
			if _, err := f.env.Directory.SetIdP(f.ctx, "bridge-co", identity.IdPRequest{Issuer: up.issuer(), ClientID: upstreamClientID,
				ClientSecret: upstreamClientSecret, IdPSettings: s}, op); err != nil {
				t.Fatal(err)
			}
		}
		setIdP(identity.IdPSettings{})
		app, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)

		// signIn runs a federated sign-in in browser b and returns the
		// Bulkhead user it signed in as ("" if none), the last page and its URL.
		signIn := func(b *browser) (sub, page, at string) {
			t.Helper()
			v := oauth2.GenerateVerifier()
			code, page, _, at := federatedSignIn(t, b, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "ann@bridge.example")
			if code == "" {
				return "", page, at
			}
			return f.subjectOf(t, conf, app.ID, code, v), "", at
		}
		refused := func(name string, claims, userinfo map[string]any) {
			t.Helper()
			up.says(claims)
			up.saysInUserinfo(userinfo)
			if sub, page, _ := signIn(fresh()); sub != "" {
				t.Errorf("%s: signed in as %s (ann is %s)", name, sub, ann.ID)
			} else if !strings.Contains(page, "cannot sign in here") {
				t.Errorf("%s: refused with an unexpected page: %.200s", name, page)
			}
		}

		// 1. Whatever the upstream says about ann's email, a new upstream
		// identity does not become ann while the tenant has not enabled
		// linking by email.
		refused("email_verified missing", map[string]any{"sub": "mallory", "email": "ann@bridge.example"}, nil)
		refused(`email_verified "false"`, map[string]any{"sub": "mallory", "email": "ann@bridge.example", "email_verified": "false"}, nil)
		refused(`email_verified "true"`, map[string]any{"sub": "mallory", "email": "ann@bridge.example", "email_verified": "true"}, nil)
		refused("email_verified true, linking off", map[string]any{"sub": "mallory", "email": "ann@bridge.example", "email_verified": true}, nil)
		refused("email from userinfo", map[string]any{"sub": "mallory"},
			map[string]any{"sub": "mallory", "email": "ann@bridge.example", "email_verified": true})
		// Linking on: still not without the boolean assertion, in the ID
		// token or in userinfo about the same subject.
		setIdP(identity.IdPSettings{LinkExistingByEmail: true})
		refused("linking on, email_verified missing", map[string]any{"sub": "mallory", "email": "ann@bridge.example"}, nil)
		refused(`linking on, email_verified "true"`, map[string]any{"sub": "mallory", "email": "ann@bridge.example", "email_verified": "true"}, nil)
		refused(`linking on, email_verified 1`, map[string]any{"sub": "mallory", "email": "ann@bridge.example", "email_verified": 1}, nil)
		refused("linking on, userinfo about another subject", map[string]any{"sub": "mallory"},
			map[string]any{"sub": "ann-at-upstream", "email": "ann@bridge.example", "email_verified": true})
		refused(`linking on, userinfo email_verified "true"`, map[string]any{"sub": "mallory"},
			map[string]any{"sub": "mallory", "email": "ann@bridge.example", "email_verified": "true"})
		refused("linking on, userinfo email_verified missing", map[string]any{"sub": "mallory"},
			map[string]any{"sub": "mallory", "email": "ann@bridge.example"})
		if users, _ := f.env.Directory.ListUsers(f.ctx, "bridge-co", identity.ListOptions{}); len(users.Items) != 1 {
			t.Fatalf("refused sign-ins left users behind: %+v", users.Items)
		}

		// 2. Linking on and the boolean assertion: the upstream identity is
		// linked to ann's account, but ann's TOTP factor is asked for in the
		// browser that started the sign-in, and nowhere else.
		up.says(map[string]any{"sub": "ann-at-upstream", "email": "ann@bridge.example", "email_verified": true})
		up.saysInUserinfo(nil)
		annB := fresh()
		annV := oauth2.GenerateVerifier()
		code, page, _, at := federatedSignIn(t, annB, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(annV)), "ann@bridge.example")
		if code != "" || !strings.Contains(page, "authenticator app") || !strings.Contains(at, "/login?authRequestID=") {
			t.Fatalf("ann's factor was not asked for: code %q; %s: %.300s", code, at, page)
		}
		mal := fresh()
		if status, _, body := get(t, mal.client, at); status != http.StatusForbidden || !strings.Contains(body, "another browser") {
			t.Errorf("another browser opened the second-factor step: %d %.200s", status, body)
		}
		fields, _ := formFields(t, mustGet(t, annB.client, at))
		mal.stopAt = redirectURI
		if code, _, status, _ := mal.submit(at, withField(fields, "code", "000000")); code != "" || status != http.StatusForbidden {
			t.Errorf("another browser posted the second-factor step: code %q, status %d", code, status)
		}
		if code, page, status, _ := annB.submit(at, withField(fields, "code", "000000")); code != "" || status != http.StatusUnauthorized {
			t.Errorf("a wrong code: code %q, status %d: %.200s", code, status, page)
		}
		next, _ := totp.GenerateCode(enrollment.Secret, time.Now().Add(30*time.Second))
		fields, _ = formFields(t, mustGet(t, annB.client, at))
		code, page, _, _ = annB.submit(at, withField(fields, "code", next))
		if code == "" {
			t.Fatalf("ann's code was refused: %.300s", page)
		}
		if sub := f.subjectOf(t, conf, app.ID, code, annV); sub != ann.ID {
			t.Fatalf("the linked sign-in is %q, want ann %s", sub, ann.ID)
		}
		up.says(map[string]any{"sub": "ann-at-upstream", "email": "ann.renamed@bridge.example"}) // the link, not the email
		if sub, page, _ := signIn(fresh()); sub != "" || !strings.Contains(page, "authenticator app") {
			t.Errorf("the linked identity's next sign-in skipped the factor: %q %.200s", sub, page)
		}
		// The tenant takes its provider's sign-in as enough: no code.
		setIdP(identity.IdPSettings{LinkExistingByEmail: true, UpstreamMFASufficient: true})
		if sub, page, _ := signIn(fresh()); sub != ann.ID {
			t.Errorf("upstream_mfa_sufficient: signed in as %q (want ann %s): %.200s", sub, ann.ID, page)
		}
		setIdP(identity.IdPSettings{})

		// 3. A new upstream identity with a free email is a new user, linked
		// by subject: a later sign-in is the same user whatever its email.
		up.says(map[string]any{"sub": "bob-at-upstream", "email": "bob@bridge.example"}) // unverified: fine for a new account
		bob, page, _ := signIn(fresh())
		if bob == "" || bob == ann.ID {
			t.Fatalf("bob's first sign-in: %q %.200s", bob, page)
		}
		up.says(map[string]any{"sub": "bob-at-upstream", "email": "robert@bridge.example", "email_verified": true})
		if again, page, _ := signIn(fresh()); again != bob {
			t.Errorf("bob's second sign-in (new email) is %q, want %s: %.200s", again, bob, page)
		}
		// Someone else at the upstream now claims bob's email, verified, with
		// linking on: bob's account already has an identity there, so no.
		setIdP(identity.IdPSettings{LinkExistingByEmail: true})
		refused("another subject, bob's linked account", map[string]any{"sub": "eve", "email": "bob@bridge.example", "email_verified": true}, nil)
		// No email at all for someone new: refused.
		refused("no email", map[string]any{"sub": "nobody"}, nil)
		// A disabled linked user cannot sign in through the upstream.
		disabled := identity.UserDisabled
		if _, err := f.env.Directory.UpdateUser(f.ctx, "bridge-co", bob, identity.UserPatch{Status: &disabled}, op); err != nil {
			t.Fatal(err)
		}
		refused("disabled user", map[string]any{"sub": "bob-at-upstream", "email": "bob@bridge.example"}, nil)
		// Deleting the user deletes the link: the identity comes back new.
		if err := f.env.Directory.DeleteUser(f.ctx, "bridge-co", bob, op); err != nil {
			t.Fatal(err)
		}
		if again, page, _ := signIn(fresh()); again == "" || again == bob {
			t.Errorf("after deletion: %q %.200s", again, page)
		}

		// 4. Links and refusals are audited in the tenant's chain, with no
		// secret of the upstream client or the sign-in.
		events, err := f.env.Audit.ListAllTenants(f.ctx, audit.Filter{Tenant: "bridge-co", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var links, refusals int
		for _, e := range events.Items {
			raw, _ := json.Marshal(e)
			if strings.Contains(string(raw), upstreamClientSecret) || strings.Contains(string(raw), "code-") ||
				strings.Contains(string(raw), "upstream-access-token") {
				t.Errorf("audit event %s holds a secret: %s", e.Action, raw)
			}
			switch {
			case e.Action == "user.federation_linked" && e.Detail["how"] == string(identity.FederatedLinkedByEmail) && e.Target == ann.ID:
				links++
			case e.Action == "login.failure" && strings.HasPrefix(e.Detail["reason"], "federated_"):
				refusals++
			}
		}
		if links != 1 || refusals < 12 {
			t.Errorf("audit: %d links of ann by email (want 1), %d federation refusals (want ≥ 12)", links, refusals)
		}
		if _, err := f.env.Audit.VerifyAllTenants(f.ctx); err != nil {
			t.Error(err)
		}
	})
}

// subjectOf redeems a code and returns the subject of the ID token.
func (f *fixture) subjectOf(t *testing.T, conf oauth2.Config, clientID, code, verifier string) string {
	t.Helper()
	tok, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := claimsOf(t, f.ctx, f.env.URL, clientID, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	if claims["tenant_id"] != "bridge-co" {
		t.Errorf("a federated token of tenant %v", claims["tenant_id"])
	}
	sub, _ := claims["sub"].(string)
	return sub
}

func mustGet(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func withField(v map[string][]string, k, value string) map[string][]string {
	out := map[string][]string{}
	for kk, vv := range v {
		out[kk] = vv
	}
	out[k] = []string{value}
	return out
}

// TestFederationOnLoginSubdomain: a federated sign-in started on a
// tenant's login subdomain comes back to that host's /login/callback
// (where the browser's binding cookie is), and the second-factor step
// that follows stays on it.
func TestFederationOnLoginSubdomain(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, LoginDomain: "login.example"}), ctx: context.Background()}
		f.tenant(t, "bridge-co", "standard")
		ann := f.user(t, "bridge-co", "ann@gmail.example", "ann's long password")
		e, err := f.env.Directory.EnrollTOTP(f.ctx, "bridge-co", ann.ID, op)
		if err != nil {
			t.Fatal(err)
		}
		now, _ := totp.GenerateCode(e.Secret, time.Now())
		if err := f.env.Directory.ConfirmTOTP(f.ctx, "bridge-co", ann.ID, now, op); err != nil {
			t.Fatal(err)
		}
		up := newUpstreamIdP(t)
		if _, err := f.env.Directory.SetIdP(f.ctx, "bridge-co", identity.IdPRequest{Issuer: up.issuer(), ClientID: upstreamClientID,
			ClientSecret: upstreamClientSecret, IdPSettings: identity.IdPSettings{LinkExistingByEmail: true}}, op); err != nil {
			t.Fatal(err)
		}
		up.says(map[string]any{"sub": "ann-upstream", "email": "ann@gmail.example", "email_verified": true})
		app := f.client(t, "", identity.CreateClientRequest{Name: "app", Public: true,
			GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{redirectURI}})
		server, _ := url.Parse(f.env.URL)
		host := "bridge-co.login.example:" + server.Port()
		conf := oauth2.Config{ClientID: app.ID, RedirectURL: redirectURI, Scopes: []string{"openid"},
			Endpoint: oauth2.Endpoint{AuthURL: "http://" + host + "/authorize"}}
		// The login domain's names reach the test node, as DNS would send them.
		b := newBrowser(t, redirectURI)
		b.client.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if strings.HasSuffix(strings.Split(addr, ":")[0], ".login.example") {
				addr = server.Host
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
		code, page, _, at := federatedSignIn(t, b, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "ann@gmail.example")
		if code != "" || !strings.HasPrefix(at, "http://"+host+"/login?authRequestID=") {
			t.Fatalf("the second-factor step is not on the subdomain: code %q at %s: %.200s", code, at, page)
		}
		if back := up.redirectURIs(); len(back) != 1 || back[0] != "http://"+host+"/login/callback" {
			t.Errorf("the upstream was asked to send the browser back to %v", back)
		}
		next, _ := totp.GenerateCode(e.Secret, time.Now().Add(30*time.Second))
		fields, _ := formFields(t, mustGet(t, b.client, at))
		if code, page, _, _ := b.submit(at, withField(fields, "code", next)); code == "" {
			t.Fatalf("the code on the subdomain: %.200s", page)
		}
	})
}
