package auth_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/auth"
)

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

func serve(h http.Handler, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/orders", nil)
	for i := 0; i < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestMiddleware(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) { c.Realm = `orders "api"` })
	var got *auth.Claims
	h := e.v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := auth.FromContext(r.Context())
		if !ok {
			t.Error("no claims in the context")
		}
		got = c
		w.WriteHeader(http.StatusNoContent)
	}))
	if w := serve(h, "Authorization", "Bearer "+e.platform(e.es, "acme")); w.Code != http.StatusNoContent || got == nil || got.TenantID != "acme" {
		t.Fatalf("valid token: %d %s, claims %+v", w.Code, w.Body, got)
	}
	if w := serve(h, "Authorization", "bearer  "+e.platform(e.ed, "globex")); w.Code != http.StatusNoContent || got.TenantID != "globex" {
		t.Fatalf("lower-case scheme: %d %s", w.Code, w.Body)
	}
	if _, ok := auth.FromContext(t.Context()); ok {
		t.Error("FromContext of a bare context")
	}

	expired := e.es.Sign(with(e.claims(e.op.Issuer(), "acme"), "exp", e.clk.Now().Add(-time.Hour).Unix()))
	for _, tc := range []struct {
		name      string
		header    []string
		status    int
		code      string
		challenge string // the WWW-Authenticate value, "" for none
	}{
		{"no header", nil, 401, "token_missing", `Bearer realm="orders \"api\""`},
		{"basic auth", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, "token_missing", `Bearer realm="orders \"api\""`},
		{"expired", []string{"Authorization", "Bearer " + expired}, 401, "token_expired",
			`Bearer realm="orders \"api\"", error="invalid_token", error_description="the token has expired"`},
		{"garbage", []string{"Authorization", "Bearer garbage"}, 401, "token_malformed",
			`Bearer realm="orders \"api\"", error="invalid_token", error_description="the token is not a compact JWS"`},
		{"empty bearer", []string{"Authorization", "Bearer "}, 400, "invalid_request",
			`Bearer realm="orders \"api\"", error="invalid_request", error_description="the Authorization header's bearer token is malformed"`},
		{"two tokens", []string{"Authorization", "Bearer a b"}, 400, "invalid_request",
			`Bearer realm="orders \"api\"", error="invalid_request", error_description="the Authorization header's bearer token is malformed"`},
		{"two headers", []string{"Authorization", "Bearer " + e.platform(e.es, "acme"), "Authorization", "Bearer " + e.platform(e.es, "acme")}, 400, "invalid_request",
			`Bearer realm="orders \"api\"", error="invalid_request", error_description="the request has more than one Authorization header"`},
	} {
		got = nil
		w := serve(h, tc.header...)
		if w.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, w.Code, tc.status)
		}
		if got != nil {
			t.Errorf("%s: the handler ran", tc.name)
		}
		if c := w.Header().Get("WWW-Authenticate"); c != tc.challenge {
			t.Errorf("%s: WWW-Authenticate = %s, want %s", tc.name, c, tc.challenge)
		}
		p := decodeProblem(t, tc.name, w)
		if p.Code != tc.code || p.Status != tc.status || p.Type != "urn:bulkhead:problem:"+tc.code || p.Detail == "" || p.Title != http.StatusText(tc.status) {
			t.Errorf("%s: problem %+v", tc.name, p)
		}
		for i := 1; i < len(tc.header); i += 2 {
			for _, piece := range tokenPieces(strings.TrimPrefix(tc.header[i], "Bearer ")) {
				if strings.Contains(w.Body.String(), piece) || strings.Contains(w.Header().Get("WWW-Authenticate"), piece) {
					t.Errorf("%s: the answer holds token material", tc.name)
				}
			}
		}
	}
}

func decodeProblem(t *testing.T, what string, w *httptest.ResponseRecorder) problemBody {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type = %q", what, ct)
	}
	var p problemBody
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Errorf("%s: body %q: %v", what, w.Body, err)
	}
	return p
}

// TestMiddlewareRefusals runs every bad token of the table through the
// middleware: 401 invalid_token with the token's code, and nothing of the
// token in the answer.
func TestMiddlewareRefusals(t *testing.T) {
	e := newEnv(t)
	h := e.v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("handler ran for a bad token")
	}))
	for _, tc := range badTokens(t, e) {
		if tc.token == "" || strings.HasPrefix(tc.token, " ") {
			continue // "Bearer " is an invalid request, tested above; spaces after "Bearer" are allowed
		}
		w := serve(h, "Authorization", "Bearer "+tc.token)
		wantStatus := http.StatusUnauthorized
		if strings.ContainsAny(tc.token, " ") {
			wantStatus = http.StatusBadRequest
		}
		if w.Code != wantStatus {
			t.Errorf("%s: status %d", tc.name, w.Code)
			continue
		}
		p := decodeProblem(t, tc.name, w)
		if wantStatus == http.StatusUnauthorized {
			if p.Code != tc.want.Code {
				t.Errorf("%s: code %s, want %s", tc.name, p.Code, tc.want.Code)
			}
			if c := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(c, `Bearer realm="bulkhead", error="invalid_token", error_description="`) {
				t.Errorf("%s: WWW-Authenticate = %s", tc.name, c)
			}
		}
		for _, piece := range tokenPieces(tc.token) {
			if strings.Contains(w.Body.String(), piece) || strings.Contains(w.Header().Get("WWW-Authenticate"), piece) {
				t.Errorf("%s: the answer holds token material", tc.name)
			}
		}
	}
}

func TestMiddlewareKeysUnavailable(t *testing.T) {
	e := newEnv(t)
	tok := e.platform(e.es, "acme")
	e.op.Close()
	w := serve(e.v.Middleware(http.NotFoundHandler()), "Authorization", "Bearer "+tok)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("provider down: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if p := decodeProblem(t, "keys unavailable", w); p.Code != auth.ErrKeysUnavailable.Code {
		t.Errorf("problem %+v", p)
	}
	if !errors.Is(auth.ErrKeysUnavailable, auth.ErrKeysUnavailable) {
		t.Error("errors.Is")
	}
}
