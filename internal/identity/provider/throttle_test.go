package provider_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// fromAddress makes b's requests come from addr (the test node trusts
// X-Forwarded-For from loopback).
type fromAddress struct {
	addr string
	next http.RoundTripper
}

func (f fromAddress) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.addr)
	return f.next.RoundTrip(r)
}

// TestLoginThrottleCannotLockOwnerOut: the per-account throttle counts
// failures per (account, address): guesses from a dozen addresses do not
// lock the owner out, successes count for nothing, and the guesser's own
// address is throttled.
func TestLoginThrottleCannotLockOwnerOut(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, TrustedProxies: []string{"127.0.0.1"}}), ctx: context.Background()}
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
		at := func(addr string) *browser {
			b := newBrowser(t, redirectURI)
			b.client.Transport = fromAddress{addr, http.DefaultTransport}
			return b
		}
		authURL := func() string { return conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())) }
		for i := range 12 {
			at(fmt.Sprintf("198.51.100.%d", i)).signIn(authURL(), "ann@acme.example", "wrong guess", "")
		}
		// The guesser's one address, past its ten failures, is throttled.
		mal := at("203.0.113.9")
		for range 10 {
			mal.signIn(authURL(), "ann@acme.example", "wrong guess", "")
		}
		if _, page, status := mal.signIn(authURL(), "ann@acme.example", "ann's long password", ""); status != http.StatusTooManyRequests {
			t.Errorf("the guessing address after ten failures: %d %s", status, page)
		}
		// A guesser rotating through the addresses of its own IPv6 /64
		// is one address: ten failures, then throttled.
		for i := range 10 {
			at(fmt.Sprintf("2001:db8:7:9::%x", i+1)).signIn(authURL(), "ann@acme.example", "wrong guess", "")
		}
		if _, page, status := at("2001:db8:7:9:ffff::1").signIn(authURL(), "ann@acme.example", "ann's long password", ""); status != http.StatusTooManyRequests {
			t.Errorf("a new address of the guessing /64 after ten failures: %d %s", status, page)
		}
		// The owner, from a fresh address, signs in; fifteen times (a new
		// browser each time: the same one would be signed in already).
		for i := range 15 {
			if code, page, _ := at("192.0.2.7").signIn(authURL(), "ann@acme.example", "ann's long password", ""); code == "" {
				t.Fatalf("the owner's sign-in %d: %s", i+1, page)
			}
		}
	})
}

// TestLoginDoesNotRevealSiloTenants: at the platform's login page, an email
// at a silo tenant's domain gets the same answer as an unknown domain,
// unless the password is right.
func TestLoginDoesNotRevealSiloTenants(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "bigco", "premium", "bigco.example")
		f.user(t, "bigco", "bea@bigco.example", "bea's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
		answer := func(email, password string) string {
			t.Helper()
			_, page, _ := newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), email, password, "")
			i := strings.Index(page, `role="alert"`)
			if i < 0 {
				t.Fatalf("no error on the page: %s", page)
			}
			return page[i : i+strings.Index(page[i:], "</p>")]
		}
		silo, unknown := answer("someone@bigco.example", "a guess"), answer("someone@nowhere.example", "a guess")
		if silo != unknown {
			t.Errorf("a silo tenant's domain answers %q, an unknown one %q", silo, unknown)
		}
		if got := answer("bea@bigco.example", "bea's long password"); !strings.Contains(got, "own sign-in address") {
			t.Errorf("bea, with her password, is not told where to sign in: %q", got)
		}
	})
}

// TestAuthorizeFlood: /authorize needs no credential and writes a
// pending sign-in, so one address that starts hundreds is refused (429,
// Retry-After, no redirect) past its bound and writes no more rows,
// while another address signs in.
func TestAuthorizeFlood(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		// A clock that stands still: the bound is its burst, however slow the machine.
		clk := clock.NewFake(time.Now())
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, Clock: clk, TrustedProxies: []string{"127.0.0.1"}}), ctx: context.Background()}
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
		flood := &http.Client{Transport: fromAddress{"203.0.113.50", http.DefaultTransport},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		refused := 0
		for range 300 {
			resp, err := flood.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusTooManyRequests:
				refused++
				if resp.Header.Get("Retry-After") == "" || resp.Header.Get("Location") != "" {
					t.Fatalf("a refusal: Retry-After %q, Location %q", resp.Header.Get("Retry-After"), resp.Header.Get("Location"))
				}
			case resp.StatusCode != http.StatusFound:
				t.Fatalf("authorize: %d", resp.StatusCode)
			}
		}
		var rows int
		if err := f.env.DB.View(f.ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			return tx.QueryRow(f.ctx, `SELECT COUNT(*) FROM oidc_auth_requests`).Scan(&rows)
		}); err != nil {
			t.Fatal(err)
		}
		if refused != 200 || rows > 100 {
			t.Errorf("300 sign-ins started from one address: %d refused, %d pending rows", refused, rows)
		}
		b := newBrowser(t, redirectURI)
		b.client.Transport = fromAddress{"192.0.2.7", http.DefaultTransport}
		if code, page, _ := b.signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "ann@acme.example", "ann's long password", ""); code == "" {
			t.Errorf("another address's sign-in during the flood: %s", page)
		}
	})
}
