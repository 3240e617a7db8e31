// Package consoletest drives the web console over HTTP as a browser
// would, for tests and benchmarks: a cookie jar that behaves like a
// browser on a loopback origin, and the sign-in through the provider's
// login page. Tests that need a real browser use internal/browsertest.
package consoletest

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// Jar keeps one origin's cookies as a browser on a loopback origin does:
// Go's cookiejar sends Secure cookies over https only, browsers also to
// http://127.0.0.1 and localhost (secure contexts). It fails the test on
// a __Host- cookie that breaks the prefix's rules.
type Jar struct {
	tb testing.TB
	mu sync.Mutex
	m  map[string]*http.Cookie
}

// SetCookies implements http.CookieJar.
func (j *Jar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range cs {
		if strings.HasPrefix(c.Name, "__Host-") && (!c.Secure || c.Path != "/" || c.Domain != "") {
			j.tb.Errorf("cookie %s breaks the __Host- rules: %+v", c.Name, c)
		}
		if c.MaxAge < 0 {
			delete(j.m, c.Name)
			continue
		}
		j.m[c.Name] = c
	}
}

// Cookies implements http.CookieJar.
func (j *Jar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*http.Cookie
	for _, c := range j.m {
		out = append(out, c)
	}
	return out
}

// Get returns the cookie named name, or nil.
func (j *Jar) Get(name string) *http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.m[name]
}

// Delete forgets the cookie named name.
func (j *Jar) Delete(name string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.m, name)
}

// Set puts c back (a test replaying an old cookie).
func (j *Jar) Set(c *http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m[c.Name] = c
}

// Browser is an HTTP client of one node with a Jar.
type Browser struct {
	tb   testing.TB
	Base string // the node's URL
	Jar  *Jar
	HTTP *http.Client
}

// New returns a browser of the node at base.
func New(tb testing.TB, base string) *Browser {
	j := &Jar{tb: tb, m: map[string]*http.Cookie{}}
	return &Browser{tb: tb, Base: base, Jar: j, HTTP: &http.Client{Jar: j, Timeout: 30 * time.Second}}
}

// Get fetches path, following redirects.
func (b *Browser) Get(path string) (int, string, *http.Response) {
	b.tb.Helper()
	resp, err := b.HTTP.Get(b.Base + path)
	if err != nil {
		b.tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

// Post posts form to path with the Origin header origin ("" for none).
func (b *Browser) Post(path string, form url.Values, origin string) (int, string) {
	b.tb.Helper()
	_, status, body := b.post(b.Base+path, form, origin)
	return status, body
}

func (b *Browser) post(u string, form url.Values, origin string) (string, int, string) {
	b.tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := b.HTTP.Do(req)
	if err != nil {
		b.tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Request.URL.String(), resp.StatusCode, string(body)
}

var hiddenField = regexp.MustCompile(`name="(authRequestID|csrf)" value="([^"]+)"`)

// LoginPost posts fields, with the hidden fields of page, to the login
// form at loginURL, and returns where the browser ends and what it shows.
func (b *Browser) LoginPost(loginURL, page string, fields url.Values) (string, int, string) {
	b.tb.Helper()
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		fields.Set(m[1], m[2])
	}
	return b.post(loginURL, fields, "")
}

// SignIn opens start (a console page that leads to the login form),
// posts fields there, and returns the page it lands on.
func (b *Browser) SignIn(start string, fields url.Values) (int, string) {
	b.tb.Helper()
	status, page, resp := b.Get(start)
	if !hiddenField.MatchString(page) {
		b.tb.Fatalf("no login form at the end of %s: %d %s", start, status, page)
	}
	_, status, page = b.LoginPost(resp.Request.URL.String(), page, fields)
	return status, page
}

// SignInOperator signs an operator in to the console, with a new
// password first if newPassword is set (the first sign-in), and the TOTP
// code of secret at now. It returns the page it lands on.
func (b *Browser) SignInOperator(email, password, newPassword, secret string, now time.Time) (int, string) {
	b.tb.Helper()
	code, err := totp.GenerateCode(secret, now)
	if err != nil {
		b.tb.Fatal(err)
	}
	fields := url.Values{"email": {email}, "password": {password}, "code": {code}}
	if newPassword != "" {
		fields.Set("new_password", newPassword)
	}
	return b.SignIn("/console/signin?as=operator", fields)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// CSRF returns the CSRF token of a console page.
func CSRF(tb testing.TB, page string) string {
	tb.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		tb.Fatalf("no CSRF token on the page: %.2000s", page)
	}
	return m[1]
}
