package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// Token exchange (RFC 8693): a tenant's service exchanges a signed-in
// user's access token for a short-lived token with kms scopes.

const (
	exchangeEmail    = "ann@exchange.example"
	exchangePassword = "a long password 123"
	exchangeScopes   = "kms:encrypt kms:decrypt"
	exchangeRedirect = "http://127.0.0.1:9/callback" // never reached: the sign-in stops at its redirect
)

// cheapArgon2 makes the one sign-in of the setup cheap; the benchmark does
// not measure password checks (BenchmarkPasswordLogin does).
var cheapArgon2 = identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// BenchmarkTokenExchange exchanges one user's access token for a tenant
// service's kms token over loopback HTTP to a node in the same process
// (GOMAXPROCS×8 concurrent callers, as BenchmarkTokenIssuance). It reports
// exchanges/s and the p50 / p99 of single exchanges (queueing included).
//
//	go test -run '^$' -bench 'TokenExchange/sqlite' -cpuprofile cpu.out ./bench/
func BenchmarkTokenExchange(b *testing.B) {
	for _, d := range storagetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			a, base := serveExchangeNode(b, storagetest.DSN(b, d))
			x, _ := exchanger(b, a, base)
			if _, err := x(); err != nil { // builds the issuer and its first signing key
				b.Fatal(err)
			}
			var (
				mu  sync.Mutex
				lat = make([]time.Duration, 0, b.N)
			)
			b.SetParallelism(parallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				defer func() {
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
				for pb.Next() {
					t0 := time.Now()
					_, err := x()
					mine = append(mine, time.Since(t0))
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if s := b.Elapsed().Seconds(); s > 0 {
				b.ReportMetric(float64(b.N)/s, "exchanges/s")
			}
			reportLatency(b, lat)
		})
	}
}

// serveExchangeNode is serveNode with cheap password hashing.
func serveExchangeNode(tb testing.TB, dsn string) (*app.App, string) {
	tb.Helper()
	srv := httptest.NewUnstartedServer(nil) // listening already: its URL is the issuer
	a := openNodeConfig(tb, app.Config{Database: dsn, PublicURL: "http://" + srv.Listener.Addr().String(),
		TokenRatePerIP: unlimitedTokenRate, Argon2: cheapArgon2})
	srv.Config.Handler = a.Handler
	srv.Start()
	tb.Cleanup(srv.Close) // runs before openNode's cleanup, which stops the node
	return a, srv.URL
}

// exchangeSetup is what exchanger registered.
type exchangeSetup struct {
	tenant  tenant.ID
	user    identity.User
	service identity.CreatedClient
}

// exchanger onboards a tenant with a user, registers a public platform app
// (bulkhead:api) and a tenant service allowed the token-exchange grant with
// kms scopes, signs the user in once through the hosted login page, and
// returns a function that exchanges that user's access token over HTTP.
// The function returns the exchanged access token.
func exchanger(tb testing.TB, a *app.App, base string) (func() (string, error), exchangeSetup) {
	tb.Helper()
	ctx := context.Background()
	actor := tenant.Actor{Principal: "bench"}
	tid := tenant.ID(fmt.Sprintf("xchg-%06d", seq.Add(1)))
	if _, _, err := a.Tenants.Create(ctx, tenants.CreateRequest{ID: string(tid), Name: "Exchange bench"}, "", actor); err != nil {
		tb.Fatal(err)
	}
	u, err := a.Directory.CreateUser(ctx, tid, identity.CreateUserRequest{Email: exchangeEmail, Password: exchangePassword}, actor)
	if err != nil {
		tb.Fatal(err)
	}
	web, err := a.Directory.CreateClient(ctx, "", identity.CreateClientRequest{Name: "app", Public: true,
		RedirectURIs: []string{exchangeRedirect}, Scopes: []string{provider.APIScope}, GrantTypes: []string{"authorization_code"}}, actor)
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := a.Directory.CreateClient(ctx, tid, identity.CreateClientRequest{Name: "svc",
		GrantTypes: []string{identity.GrantTokenExchange}, Scopes: strings.Fields(exchangeScopes)}, actor)
	if err != nil {
		tb.Fatal(err)
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1024, DisableCompression: true}
	tb.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	userToken, err := signIn(ctx, tr, base, web.ID, tid, exchangeEmail, exchangePassword)
	if err != nil {
		tb.Fatalf("sign-in: %v", err)
	}
	form := []byte(url.Values{"grant_type": {identity.GrantTokenExchange}, "subject_token": {userToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "scope": {exchangeScopes}}.Encode())
	x := func() (string, error) {
		req, err := http.NewRequest(http.MethodPost, base+"/oauth/token", bytes.NewReader(form))
		if err != nil {
			return "", err
		}
		req.SetBasicAuth(url.QueryEscape(svc.ID), url.QueryEscape(svc.ClientSecret))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", err
		}
		var t struct {
			AccessToken string `json:"access_token"`
			Scope       string `json:"scope"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &t) != nil || t.AccessToken == "" || t.Scope != exchangeScopes {
			return "", fmt.Errorf("token exchange: status %d: %.300s", resp.StatusCode, body)
		}
		return t.AccessToken, nil
	}
	return x, exchangeSetup{tenant: tid, user: u.User, service: svc}
}

var (
	loginHidden = regexp.MustCompile(`name="(authRequestID|csrf)" value="([^"]*)"`)
	loginAction = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
)

// signIn signs a user of tenant tid in to the public app clientID through
// the hosted login page at base, as a browser would (authorization code
// with PKCE, the login form with its CSRF cookie and field, the tenant as
// the organization code), and returns the user's access token.
func signIn(ctx context.Context, tr http.RoundTripper, base, clientID string, tid tenant.ID, email, password string) (string, error) {
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), exchangeRedirect) {
				return http.ErrUseLastResponse // the app's callback: not served, read its code
			}
			return nil
		}}
	conf := oauth2.Config{ClientID: clientID, RedirectURL: exchangeRedirect, Scopes: []string{"openid", provider.APIScope},
		Endpoint: oauth2.Endpoint{AuthURL: base + "/authorize", TokenURL: base + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	resp, err := browser.Get(conf.AuthCodeURL("bench-state", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		return "", err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action := loginAction.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || action == nil {
		return "", fmt.Errorf("authorize: status %d, no login form: %.300s", resp.StatusCode, page)
	}
	target, err := resp.Request.URL.Parse(html.UnescapeString(string(action[1])))
	if err != nil {
		return "", err
	}
	fields := url.Values{"email": {email}, "password": {password}, "tenant": {string(tid)}}
	for _, m := range loginHidden.FindAllSubmatch(page, -1) {
		fields.Set(string(m[1]), html.UnescapeString(string(m[2])))
	}
	resp, err = browser.PostForm(target.String(), fields) // follows the redirects up to the callback
	if err != nil {
		return "", err
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), exchangeRedirect) {
		return "", fmt.Errorf("login: status %d, location %q: %.300s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	q := loc.Query()
	if e := q.Get("error"); e != "" || q.Get("code") == "" || q.Get("state") != "bench-state" {
		return "", fmt.Errorf("login: callback %s", loc)
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: tr}), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", errors.New("code exchange: no access token")
	}
	return tok.AccessToken, nil
}

// TestTokenExchangeSmoke signs a user in and exchanges the user's token
// once, on SQLite; the exchanged token is the user's, in the user's
// tenant, with the service as its actor.
func TestTokenExchangeSmoke(t *testing.T) {
	a, base := serveExchangeNode(t, storagetest.DSN(t, storage.SQLite))
	x, s := exchanger(t, a, base)
	tok, err := x()
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("exchanged token is not a JWT: %.40q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Sub      string `json:"sub"`
		TenantID string `json:"tenant_id"`
		Scope    string `json:"scope"`
		Act      struct {
			Sub string `json:"sub"`
		} `json:"act"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.Sub != s.user.ID || c.TenantID != string(s.tenant) || c.Act.Sub != s.service.ID || c.Scope != exchangeScopes {
		t.Errorf("exchanged token claims %s; want sub %s, tenant %s, act %s, scope %q", raw, s.user.ID, s.tenant, s.service.ID, exchangeScopes)
	}
}
