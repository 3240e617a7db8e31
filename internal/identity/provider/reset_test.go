package provider_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/mail/mailtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

var resetLinkRE = regexp.MustCompile(`http://[^\s]+/login/reset/confirm\?token=(bpr_[A-Za-z0-9_-]+)`)

// TestPasswordResetByEmail: the login page's "Forgot your password?"
// sends a link (to a real SMTP server on loopback) that sets a new
// password once and ends the account's sessions; an unknown email gets
// the same answer and no email; a link works at its own issuer only, once,
// and requests are bounded per account.
func TestPasswordResetByEmail(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		sink := mailtest.New(t)
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, SMTPAddr: sink.Addr}), ctx: context.Background()}
		f.tenant(t, "acme", "standard", "acme.example")
		f.tenant(t, "bigco", "premium", "bigco.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code", "refresh_token"}},
			oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
		before := f.signIn(t, conf, "ann@acme.example", "ann's long password")

		// ask follows the login page's reset link and asks for email's link;
		// it returns the answer's text without its per-request fields.
		ask := func(email string) string {
			b := newBrowser(t, redirectURI)
			resp, err := b.client.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := regexp.MustCompile(`href="([^"]*/login/reset\?authRequestID=[^"]+)"`).FindStringSubmatch(string(page))
			if m == nil {
				t.Fatalf("no reset link on the login page: %s", page)
			}
			u, _ := url.Parse(f.env.URL)
			ref, _ := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
			resp, err = b.client.Get(u.ResolveReference(ref).String())
			if err != nil {
				t.Fatal(err)
			}
			page, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			fields := url.Values{"email": {email}}
			for _, h := range hidden.FindAllStringSubmatch(string(page), -1) {
				fields.Set(h[1], h[2])
			}
			resp, err = b.client.PostForm(resp.Request.URL.String(), fields)
			if err != nil {
				t.Fatal(err)
			}
			page, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("reset request for %s: %d %s", email, resp.StatusCode, page)
			}
			return formNoise.ReplaceAllString(string(page), "")
		}
		known := ask("ann@acme.example")
		msg := sink.Wait(t, 1)
		if len(msg.To) != 1 || msg.To[0] != "ann@acme.example" || !strings.Contains(msg.Subject, "Reset your password") {
			t.Fatalf("the email: %+v", msg)
		}
		link := resetLinkRE.FindStringSubmatch(msg.Body)
		if link == nil {
			t.Fatalf("no link in the email: %s", msg.Body)
		}
		if unknown := ask("nobody@acme.example"); unknown != strings.ReplaceAll(known, "ann@acme.example", "nobody@acme.example") {
			t.Errorf("an unknown email gets another answer:\n%s\n---\n%s", known, unknown)
		}

		get := func(u string) (int, string) {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		post := func(path, token, password string) (int, string) {
			resp, err := http.PostForm(f.env.URL+path, url.Values{"token": {token}, "new_password": {password}})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		// The link at another issuer is nobody's.
		if status, _ := get(f.env.URL + "/t/bigco/login/reset/confirm?token=" + link[1]); status != http.StatusBadRequest {
			t.Errorf("acme's link at bigco's issuer: %d", status)
		}
		if status, page := get(link[0]); status != http.StatusOK || !strings.Contains(page, `name="new_password"`) {
			t.Fatalf("the link: %d %s", status, page)
		}
		if status, _ := post("/login/reset/confirm", link[1], "short"); status != http.StatusBadRequest {
			t.Errorf("a weak password: %d", status)
		}
		if status, page := post("/login/reset/confirm", link[1], "ann's brand new password"); status != http.StatusOK || !strings.Contains(page, "Your password is changed") {
			t.Fatalf("the reset: %d %s", status, page)
		}
		if status, _ := post("/login/reset/confirm", link[1], "another new password!!"); status != http.StatusBadRequest {
			t.Errorf("the link used twice: %d", status)
		}
		if status, _ := post("/login/reset/confirm", "bpr_made-up", "another new password!!"); status != http.StatusBadRequest {
			t.Errorf("a made-up link: %d", status)
		}
		// The new password signs in; the old does not; the session from
		// before the reset cannot be refreshed.
		if code, _, _ := newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())),
			"ann@acme.example", "ann's long password", ""); code != "" {
			t.Error("the old password still signs in")
		}
		f.signIn(t, conf, "ann@acme.example", "ann's brand new password")
		if _, err := conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: before.RefreshToken}).Token(); err == nil {
			t.Error("a refresh token from before the reset still works")
		}
		// At most 3 links per account, then one per 10 minutes.
		for range 3 {
			ask("ann@acme.example")
		}
		sink.Wait(t, 3)
		time.Sleep(200 * time.Millisecond) // a fourth would be queued by now
		if n := len(sink.Messages()); n != 3 {
			t.Errorf("%d emails after 4 requests for one account, want 3", n)
		}
	})
}
