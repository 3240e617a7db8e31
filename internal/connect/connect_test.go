package connect

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// wantCode fails t unless err carries code ("" wants no error).
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	switch {
	case code == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case code != "" && !errs.Is(err, code):
		t.Fatalf("error = %v, want code %q", err, code)
	}
}

type upstreamCase struct {
	raw         string
	want        string // the canonical URL when accepted
	code        string // the error code when refused
	privateWant string // the canonical URL when private upstreams are allowed (code upstream_not_allowed)
}

func TestParseUpstream(t *testing.T) {
	tests := []upstreamCase{
		// Accepted, in canonical form.
		{raw: "https://api.example.com", want: "https://api.example.com"},
		{raw: "https://api.example.com/", want: "https://api.example.com"},
		{raw: "https://api.example.com/v1/", want: "https://api.example.com/v1"},
		{raw: "HTTPS://API.Example.COM/V1", want: "https://api.example.com/V1"},
		{raw: "http://api.example.com:8080/base", want: "http://api.example.com:8080/base"},
		{raw: "https://api.example.com/a%2Fb/", want: "https://api.example.com/a%2Fb"},
		{raw: "https://8.8.8.8/dns", want: "https://8.8.8.8/dns"},
		{raw: "https://[2606:4700::1111]/", want: "https://[2606:4700::1111]"},
		{raw: "http://[::FFFF:7F00:1]/", code: "upstream_not_allowed", privateWant: "http://[::ffff:7f00:1]"},
	}
	// Refused whatever the operator allows.
	for _, raw := range []string{
		"ftp://api.example.com/", "javascript:alert(1)", "api.example.com/v1", "http:api.example.com",
		"https://user:pass@api.example.com/", "https://@api.example.com/", "https:///v1", "https://:443/v1",
		"https://api.example.com/v1?key=1", "https://api.example.com/v1?", "https://api.example.com/v1#top", "https://api.example.com/v1#",
		"https://api.example.com/v1/../admin", "https://api.example.com/./v1", "https://api.example.com/v1/%2e%2e/admin",
		"https://api.example.com:0/", "https://api.example.com:65536/", "https://api.example.com/%zz",
		"https://api.example.com/" + strings.Repeat("a", 2048),
	} {
		tests = append(tests, upstreamCase{raw: raw, code: "invalid_upstream_url"})
	}
	// Literal addresses that are not public: refused unless allowed.
	for _, host := range []string{
		"127.0.0.1:8080", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
		"[::1]", "[fd12:3456::1]", "[fe80::1%25eth0]", "[::ffff:127.0.0.1]", "[64:ff9b::a00:1]",
	} {
		tests = append(tests, upstreamCase{raw: "http://" + host + "/", code: "upstream_not_allowed", privateWant: "http://" + host})
	}
	for _, tt := range tests {
		for _, private := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/private=%v", tt.raw[:min(len(tt.raw), 60)], private), func(t *testing.T) {
				s := &Service{opts: Options{AllowPrivateUpstreams: private}}
				want, code := tt.want, tt.code
				if private && code == "upstream_not_allowed" {
					want, code = tt.privateWant, ""
				}
				u, err := s.parseUpstream("upstream_url", tt.raw)
				wantCode(t, err, code)
				if err != nil {
					if e, _ := errs.As(err); e.Field != "upstream_url" || e.Kind != errs.Invalid {
						t.Fatalf("error field/kind = %q/%v, want upstream_url/Invalid", e.Field, e.Kind)
					}
					return
				}
				if got := u.String(); got != want {
					t.Fatalf("parseUpstream(%q) = %q, want %q", tt.raw, got, want)
				}
				// Canonical: parsing the canonical form again gives it back.
				again, err := s.parseUpstream("upstream_url", want)
				if err != nil || again.String() != want {
					t.Fatalf("parseUpstream(%q) again = %v, %v", want, again, err)
				}
			})
		}
	}
}

func TestPublicAddr(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"93.184.216.34", true},
		{"100.63.255.255", true},
		{"100.128.0.1", true},
		{"172.32.0.1", true},
		{"2606:4700::1111", true},
		{"::ffff:8.8.8.8", true},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.0.1", false},
		{"169.254.169.254", false},
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"192.0.0.8", false},
		{"198.18.0.1", false},
		{"198.19.255.255", false},
		{"224.0.0.1", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"::", false},
		{"::1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fc00::1", false},
		{"fd00::1", false},
		{"ff02::1", false},
		{"ff01::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:100.64.0.1", false},
		{"::ffff:198.18.0.1", false},
		{"::ffff:0.1.2.3", false},
		{"64:ff9b::7f00:1", false},
		{"2001:db8::1", false},
	}
	for _, tt := range tests {
		if got := publicAddr(netip.MustParseAddr(tt.addr)); got != tt.public {
			t.Errorf("publicAddr(%s) = %v, want %v", tt.addr, got, tt.public)
		}
	}
}

type placementCase struct {
	in    Placement
	want  Placement
	code  string
	field string
}

func TestPlacementCheck(t *testing.T) {
	tests := []placementCase{
		{in: Placement{}, want: Placement{Type: PlaceBearer}},
		{in: Placement{Type: PlaceBearer}, want: Placement{Type: PlaceBearer}},
		{in: Placement{Type: PlaceBearer, Name: "X-Key"}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceHeader, Name: "x-api-key"}, want: Placement{Type: PlaceHeader, Name: "X-Api-Key"}},
		{in: Placement{Type: PlaceHeader, Name: "X-API-KEY"}, want: Placement{Type: PlaceHeader, Name: "X-Api-Key"}},
		{in: Placement{Type: PlaceHeader, Name: "authorization"}, want: Placement{Type: PlaceHeader, Name: "Authorization"}},
		{in: Placement{Type: PlaceHeader, Name: strings.Repeat("a", 64)}, want: Placement{Type: PlaceHeader, Name: "A" + strings.Repeat("a", 63)}},
		{in: Placement{Type: PlaceHeader, Name: strings.Repeat("a", 65)}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceHeader}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceHeader, Name: "X Api"}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceHeader, Name: "X-Api:"}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceHeader, Name: "X-Api\r\nEvil"}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceHeader, Name: "X-Ключ"}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceQuery, Name: "api_key"}, want: Placement{Type: PlaceQuery, Name: "api_key"}},
		{in: Placement{Type: PlaceQuery, Name: "Api.Key~1-x"}, want: Placement{Type: PlaceQuery, Name: "Api.Key~1-x"}},
		{in: Placement{Type: PlaceQuery}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceQuery, Name: "api key"}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceQuery, Name: "a&b"}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceQuery, Name: "a=b"}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: PlaceQuery, Name: "a%20"}, code: "invalid_placement", field: "placement.name"},
		{in: Placement{Type: "cookie", Name: "sid"}, code: "invalid_placement", field: "placement.type"},
		{in: Placement{Type: "Bearer"}, code: "invalid_placement", field: "placement.type"},
	}
	// Every reserved header, in any case, is refused.
	for _, h := range reservedHeaders {
		for _, n := range []string{h, strings.ToLower(h), strings.ToUpper(h)} {
			tests = append(tests, placementCase{in: Placement{Type: PlaceHeader, Name: n}, code: "invalid_placement", field: "placement.name"})
		}
	}
	for _, tt := range tests {
		t.Run(tt.in.Type+"/"+tt.in.Name, func(t *testing.T) {
			p := tt.in
			err := p.check()
			wantCode(t, err, tt.code)
			if err != nil {
				if e, _ := errs.As(err); e.Field != tt.field {
					t.Fatalf("field = %q, want %q", e.Field, tt.field)
				}
				return
			}
			if p != tt.want {
				t.Fatalf("check(%+v) = %+v, want %+v", tt.in, p, tt.want)
			}
		})
	}
}

func TestCheckMethods(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
		code string
	}{
		{in: nil, want: []string{}},
		{in: []string{"get", "Post"}, want: []string{"GET", "POST"}},
		{in: []string{"GET", "get", "GET"}, want: []string{"GET"}},
		{in: methods, want: methods},
		{in: append(slices.Clone(methods), "GET"), code: "invalid_methods"},
		{in: []string{"TRACE"}, code: "invalid_methods"},
		{in: []string{"CONNECT"}, code: "invalid_methods"},
		{in: []string{""}, code: "invalid_methods"},
		{in: []string{"GET "}, code: "invalid_methods"},
	}
	for _, tt := range tests {
		got, err := checkMethods(tt.in)
		wantCode(t, err, tt.code)
		if err == nil && !slices.Equal(got, tt.want) {
			t.Errorf("checkMethods(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckPaths(t *testing.T) {
	good := [][]string{nil, {"/"}, {"/v1", "/v2/users/"}, {"/" + strings.Repeat("a", 511)}, {"/a:b@c,d;e=f+g"}}
	bad := [][]string{
		{"v1"}, {""}, {"/v1/../admin"}, {"/v1/."}, {"/.."}, {"/v1?x=1"}, {"/v1#x"}, {"/v1%2F"}, {"/v 1"},
		{"/v1\t"}, {"/v1\x00"}, {"/v1\x7f"}, {"/" + strings.Repeat("a", 512)}, {"/ok", "bad"},
		slices.Repeat([]string{"/a"}, 101),
	}
	for _, in := range good {
		got, err := checkPaths(in)
		wantCode(t, err, "")
		if !slices.Equal(got, in) || got == nil {
			t.Errorf("checkPaths(%q) = %#v", in, got)
		}
	}
	for _, in := range bad {
		_, err := checkPaths(in)
		if !errs.Is(err, "invalid_paths") {
			t.Errorf("checkPaths(%.40q) = %v, want invalid_paths", in, err)
		}
	}
}

func TestCheckToken(t *testing.T) {
	tests := []struct {
		token string
		ok    bool
	}{
		{"sk_live_abc123", true},
		{"!~" + strings.Repeat("x", MaxTokenBytes-2), true},
		{"", false},
		{strings.Repeat("x", MaxTokenBytes+1), false},
		{"abc def", false},
		{"abc\tdef", false},
		{"abc\r\nX-Evil: 1", false},
		{"abc\n", false},
		{"abc\x00", false},
		{"abc\x7f", false},
		{"tökén", false},
	}
	for _, tt := range tests {
		err := checkToken(tt.token)
		if tt.ok {
			wantCode(t, err, "")
			continue
		}
		if e, ok := errs.As(err); !ok || e.Code != "invalid_token_value" || e.Field != "token" {
			t.Errorf("checkToken(%.30q) = %v, want invalid_token_value on token", tt.token, err)
		}
	}
}

func TestNetwork(t *testing.T) {
	tests := map[string]string{
		"203.0.113.7":          "203.0.113.0/24",
		"203.0.113.255":        "203.0.113.0/24",
		"::ffff:203.0.113.7":   "203.0.113.0/24",
		"2001:db8:1:2::1":      "2001:db8:1::/48",
		"2001:db8:1:ffff::ff":  "2001:db8:1::/48",
		"fe80::1%eth0":         "fe80::/48",
		"":                     "",
		"not-an-ip":            "",
		"203.0.113.7:443":      "",
		"[2001:db8::1]":        "",
		"203.0.113.7/24":       "",
		"2001:db8:1:2::1/64":   "",
		"::ffff:203.0.113.300": "",
	}
	for in, want := range tests {
		if got := network(in); got != want {
			t.Errorf("network(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAppendQueryEscaped(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	inputs := [][]byte{nil, []byte("abc-_.~XYZ019"), []byte("a+b/c=d&e%f?g#h"), []byte(" "), []byte("\x00\xff\x80")}
	for range 1000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		inputs = append(inputs, b)
	}
	for _, b := range inputs {
		got := string(appendQueryEscaped([]byte("k="), b))
		// A space is %20 (url.QueryEscape writes +): both decode alike,
		// and tokens never hold a space (checkToken).
		want := "k=" + strings.ReplaceAll(url.QueryEscape(string(b)), "+", "%20")
		if got != want {
			t.Fatalf("appendQueryEscaped(%q) = %q, want %q", b, got, want)
		}
		if dec, err := url.QueryUnescape(got[2:]); err != nil || dec != string(b) {
			t.Fatalf("QueryUnescape(appendQueryEscaped(%q)) = %q, %v", b, dec, err)
		}
	}
}

func TestUnderPrefix(t *testing.T) {
	tests := []struct {
		path, prefix string
		want         bool
	}{
		{"/v1", "/v1", true},
		{"/v1/", "/v1", true},
		{"/v1/users", "/v1", true},
		{"/v1/users", "/v1/", true},
		{"/anything", "/", true},
		{"/", "/", true},
		{"/v10", "/v1", false},
		{"/v1x/users", "/v1", false},
		{"/v", "/v1", false},
		{"/v2/users", "/v1", false},
		{"/V1/users", "/v1", false},
		{"/", "/v1", false},
	}
	for _, tt := range tests {
		if got := underPrefix(tt.path, tt.prefix); got != tt.want {
			t.Errorf("underPrefix(%q, %q) = %v, want %v", tt.path, tt.prefix, got, tt.want)
		}
	}
}

func TestCheckRequest(t *testing.T) {
	c := Connection{AllowedMethods: []string{"GET", "POST"}, AllowedPaths: []string{"/v1/users", "/v2/"}}
	tests := []struct {
		name   string
		method string
		header http.Header
		conn   Connection
		path   string
		code   string
	}{
		{name: "allowed", method: "GET", conn: c, path: "/v1/users/42"},
		{name: "prefix itself", method: "POST", conn: c, path: "/v1/users"},
		{name: "every method by default", method: "DELETE", conn: Connection{}, path: "/x"},
		{name: "method not allowed", method: "DELETE", conn: c, path: "/v1/users", code: "method_not_allowed"},
		{name: "TRACE never", method: "TRACE", conn: Connection{}, path: "/x", code: "method_not_allowed"},
		{name: "CONNECT", method: http.MethodConnect, conn: Connection{}, path: "/x", code: "upgrade_not_supported"},
		{name: "upgrade", method: "GET", conn: c, path: "/v1/users", header: http.Header{"Upgrade": {"websocket"}}, code: "upgrade_not_supported"},
		{name: "path not allowed", method: "GET", conn: c, path: "/v1/admin", code: "path_not_allowed"},
		{name: "sibling prefix", method: "GET", conn: c, path: "/v1/usersx", code: "path_not_allowed"},
		{name: "trailing-slash prefix", method: "GET", conn: c, path: "/v2", code: "path_not_allowed"},
		{name: "headers too large", method: "GET", conn: c, path: "/v1/users",
			header: http.Header{"X-Big": {strings.Repeat("a", MaxRequestHeaderBytes)}}, code: "headers_too_large"},
		{name: "headers at limit", method: "GET", conn: c, path: "/v1/users",
			header: http.Header{"X-Big": {strings.Repeat("a", MaxRequestHeaderBytes-len("X-Big")-4)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			wantCode(t, checkRequest(&http.Request{Method: tt.method, Header: h}, tt.conn, tt.path), tt.code)
		})
	}
}

func TestTarget(t *testing.T) {
	const token = "tok+/=&%en"
	tests := []struct {
		name        string
		upstream    string
		placement   Placement
		restPath    string
		restEscaped string
		rawQuery    string
		wantURL     string // without the query when the token is in it
		wantHeader  string
		wantValue   string
		wantQuery   url.Values // the parsed query, token included
		code        string
	}{
		{name: "bearer", upstream: "https://api.example.com/v1", placement: Placement{Type: PlaceBearer},
			restPath: "/users/42", restEscaped: "/users/42", rawQuery: "a=1&b=2",
			wantURL: "https://api.example.com/v1/users/42?a=1&b=2", wantHeader: "Authorization", wantValue: "Bearer " + token},
		{name: "header", upstream: "https://api.example.com", placement: Placement{Type: PlaceHeader, Name: "X-Api-Key"},
			restPath: "/", restEscaped: "/",
			wantURL: "https://api.example.com/", wantHeader: "X-Api-Key", wantValue: token},
		{name: "escaped path kept", upstream: "https://api.example.com/base%2Fx", placement: Placement{Type: PlaceBearer},
			restPath: "/a b/c/d", restEscaped: "/a%20b/c%2Fd",
			wantURL: "https://api.example.com/base%2Fx/a%20b/c%2Fd", wantHeader: "Authorization", wantValue: "Bearer " + token},
		{name: "query", upstream: "https://api.example.com/v1", placement: Placement{Type: PlaceQuery, Name: "api_key"},
			restPath: "/search", restEscaped: "/search", rawQuery: "q=x+y&page=2",
			wantURL: "https://api.example.com/v1/search", wantQuery: url.Values{"q": {"x y"}, "page": {"2"}, "api_key": {token}}},
		{name: "query replaces the integration's parameter", upstream: "https://api.example.com", placement: Placement{Type: PlaceQuery, Name: "api_key"},
			restPath: "/", restEscaped: "/", rawQuery: "api_key=evil&q=1&api%5Fkey=evil2&api_key",
			wantURL: "https://api.example.com/", wantQuery: url.Values{"q": {"1"}, "api_key": {token}}},
		{name: "query alone", upstream: "https://api.example.com", placement: Placement{Type: PlaceQuery, Name: "key"},
			restPath: "/", restEscaped: "/",
			wantURL: "https://api.example.com/", wantQuery: url.Values{"key": {token}}},
		{name: "query that does not parse", upstream: "https://api.example.com", placement: Placement{Type: PlaceQuery, Name: "key"},
			restPath: "/", restEscaped: "/", rawQuery: "a=%zz", code: "invalid_query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, err := url.Parse(tt.upstream)
			if err != nil {
				t.Fatal(err)
			}
			g := &grantState{upstream: up, conn: connRow{Connection: Connection{Placement: tt.placement}}}
			tok := []byte(token)
			out, err := target(g, tt.restPath, tt.restEscaped, tt.rawQuery, tok)
			wantCode(t, err, tt.code)
			if err != nil {
				return
			}
			if out.header != tt.wantHeader || out.value != tt.wantValue {
				t.Fatalf("header %q: %q, want %q: %q", out.header, out.value, tt.wantHeader, tt.wantValue)
			}
			if g.upstream.String() != tt.upstream {
				t.Fatalf("target changed the grant's upstream to %s", g.upstream)
			}
			got := *out.url
			if tt.wantQuery != nil {
				q, err := url.ParseQuery(got.RawQuery)
				if err != nil || !equalValues(q, tt.wantQuery) {
					t.Fatalf("query %q = %v (%v), want %v", got.RawQuery, q, err, tt.wantQuery)
				}
				got.RawQuery = ""
			}
			if got.String() != tt.wantURL {
				t.Fatalf("URL = %s, want %s", got.String(), tt.wantURL)
			}

			// The token's text is a copy of its own: clearing the token's
			// bytes, as the proxy does after the exchange, leaves it whole.
			secret := strings.Clone(out.value + out.url.RawQuery)
			if !strings.Contains(secret, "tok") {
				t.Fatalf("the token is neither in the header nor in the query: %q", secret)
			}
			clear(tok)
			if out.value+out.url.RawQuery != secret {
				t.Fatalf("the token's text aliases the token's bytes: %q became %q", secret, out.value+out.url.RawQuery)
			}
		})
	}
}

func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// ---- anomaly detector ----

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// window is the traffic of one window: requests spread over paths (path
// i%paths for the i-th), then responses of the given sizes.
type window struct {
	reqs, paths int
	responses   []int64
}

// quiet is the baseline's usual window: 3 requests, 3000 bytes, 1 or 2 paths.
func quiet(i int) window {
	return window{reqs: 3, paths: 1 + i%2, responses: []int64{1000, 1000, 1000}}
}

// run feeds w to grant's baseline in window number n (counted from t0,
// one second into it) with sensitivity k, and returns the kinds raised,
// in order, with the 1-based request or response that raised each.
func run(d *detector, grant string, n int, w window, k float64) []string {
	now := t0.Add(time.Duration(n)*d.opts.Window + time.Second)
	var kinds []string
	for i := range w.reqs {
		for _, f := range d.request(grant, fmt.Sprintf("/p/%d", i%max(w.paths, 1)), k, now) {
			kinds = append(kinds, fmt.Sprintf("%s@req%d", f.kind, i+1))
		}
	}
	for i, size := range w.responses {
		for _, f := range d.response(grant, size, k, now) {
			kinds = append(kinds, fmt.Sprintf("%s@resp%d", f.kind, i+1))
		}
	}
	return kinds
}

// baselineOf feeds windows 0..n-1 of quiet traffic and fails t on any alert.
func baselineOf(t *testing.T, d *detector, grant string, n int, k float64) {
	t.Helper()
	for i := range n {
		if got := run(d, grant, i, quiet(i), k); len(got) > 0 {
			t.Fatalf("quiet window %d raised %v", i, got)
		}
	}
}

func TestDetector(t *testing.T) {
	burst := window{reqs: 30, paths: 1, responses: []int64{1000}}
	download := window{reqs: 3, paths: 1, responses: []int64{1000, 1000, 50000, 50000}}
	enumerate := window{reqs: 8, paths: 8}
	tests := []struct {
		name    string
		quiet   int // windows of baseline
		gap     int // windows skipped after it
		traffic []window
		want    [][]string // kinds raised in each traffic window
	}{
		{name: "burst after warmup", quiet: 20, traffic: []window{burst}, want: [][]string{{"request_rate@req10"}}},
		{name: "burst before warmup", quiet: 3, traffic: []window{burst}, want: [][]string{nil}},
		{name: "last warmup window", quiet: 9, traffic: []window{burst}, want: [][]string{nil}},
		{name: "first window after warmup", quiet: 10, traffic: []window{burst}, want: [][]string{{"request_rate@req10"}}},
		{name: "once per window, again in the next", quiet: 20, traffic: []window{burst, {reqs: 100, paths: 1}},
			want: [][]string{{"request_rate@req10"}, {"request_rate@req52"}}},
		{name: "download", quiet: 20, traffic: []window{download}, want: [][]string{{"bytes_out@resp3"}}},
		{name: "enumeration", quiet: 20, traffic: []window{enumerate}, want: [][]string{{"distinct_paths@req6"}}},
		{name: "quiet after quiet", quiet: 20, traffic: []window{quiet(20), quiet(21)}, want: [][]string{nil, nil}},
		// A long gap folds empty windows: the baseline forgets, and a
		// window that was usual before stands out (limit about k × 1).
		{name: "after a long gap", quiet: 20, gap: 50, traffic: []window{{reqs: 6, paths: 1}}, want: [][]string{{"request_rate@req5"}}},
		{name: "after a very long gap", quiet: 20, gap: 5000, traffic: []window{{reqs: 6, paths: 1}}, want: [][]string{{"request_rate@req5"}}},
		{name: "usual traffic after a short gap", quiet: 20, gap: 1, traffic: []window{quiet(0)}, want: [][]string{nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDetector(AnomalyOptions{})
			baselineOf(t, d, "grt_a", tt.quiet, DefaultSensitivity)
			for i, w := range tt.traffic {
				got := run(d, "grt_a", tt.quiet+tt.gap+i, w, DefaultSensitivity)
				if !slices.Equal(got, tt.want[i]) {
					t.Fatalf("traffic window %d raised %v, want %v", i, got, tt.want[i])
				}
			}
			// Another grant's baseline is its own.
			if got := run(d, "grt_b", tt.quiet+tt.gap, burst, DefaultSensitivity); got != nil {
				t.Fatalf("a new grant raised %v", got)
			}
		})
	}
}

func TestDetectorSensitivity(t *testing.T) {
	// A steady baseline of 3 requests (stddev 0): the limit is 3 + k×1.5,
	// so a lower k alerts earlier.
	for _, tt := range []struct {
		k    float64
		want string
	}{{1, "request_rate@req5"}, {2, "request_rate@req7"}, {4, "request_rate@req10"}, {8, "request_rate@req16"}, {50, ""}} {
		d := newDetector(AnomalyOptions{})
		baselineOf(t, d, "grt_a", 20, tt.k)
		got := run(d, "grt_a", 20, window{reqs: 40, paths: 1}, tt.k)
		if want := []string{tt.want}; tt.want == "" && got != nil || tt.want != "" && !slices.Equal(got, want) {
			t.Errorf("k=%v: raised %v, want %q", tt.k, got, tt.want)
		}
	}
}

func TestDetectorRollsWindows(t *testing.T) {
	d := newDetector(AnomalyOptions{Window: 10 * time.Second, Warmup: 2, Alpha: 0.5})
	if d.opts.Window != 10*time.Second || d.opts.Warmup != 2 || d.opts.Alpha != 0.5 {
		t.Fatalf("options not kept: %+v", d.opts)
	}
	d.request("g", "/a", 4, t0)
	d.request("g", "/b", 4, t0.Add(9*time.Second))
	d.response("g", 100, 4, t0.Add(9*time.Second))
	b := d.m["g"]
	if b.windows != 0 || b.reqs != 2 || b.bytes != 100 || len(b.paths) != 2 {
		t.Fatalf("first window: %+v", b)
	}
	// 35 s after the start: window 0 folded, then windows 1 and 2 empty.
	d.request("g", "/a", 4, t0.Add(35*time.Second))
	if b.windows != 3 || !b.start.Equal(t0.Add(30*time.Second)) || b.reqs != 1 || len(b.paths) != 1 {
		t.Fatalf("after the gap: windows %d start %v reqs %v paths %d", b.windows, b.start, b.reqs, len(b.paths))
	}
	// Requests: 2, then 0, 0 with alpha 0.5: mean 0.5.
	if m := b.stats[0].mean; m != 0.5 {
		t.Fatalf("request mean = %v, want 0.5", m)
	}
	if m := b.stats[1].mean; m != 25 {
		t.Fatalf("bytes mean = %v, want 25", m)
	}
	// A gap of more than 100 windows folds at most 100, and the window
	// start stays aligned.
	d.request("g", "/a", 4, t0.Add(30*time.Second+1000*10*time.Second+3*time.Second))
	if b.windows != 103 || !b.start.Equal(t0.Add(30*time.Second+1000*10*time.Second)) {
		t.Fatalf("after a long gap: windows %d start %v", b.windows, b.start)
	}
	if b.stats[0].mean > 1e-20 {
		t.Fatalf("request mean after a long gap = %v, want about 0", b.stats[0].mean)
	}
}

func TestDetectorDefaultsAndBounds(t *testing.T) {
	d := newDetector(AnomalyOptions{Alpha: 1.5, Warmup: -1, MaxGrants: 3})
	if d.opts.Window != time.Minute || d.opts.Warmup != 10 || d.opts.Alpha != 0.2 || d.opts.LearningPeriod != 24*time.Hour {
		t.Fatalf("defaults: %+v", d.opts)
	}
	for i := range 10 {
		d.request(fmt.Sprintf("g%d", i), "/", DefaultSensitivity, t0)
	}
	if len(d.m) != 3 {
		t.Fatalf("%d baselines kept, want at most 3", len(d.m))
	}
	if _, ok := d.m["g9"]; !ok {
		t.Fatalf("the newest grant's baseline was dropped")
	}
	d.drop("g9")
	if _, ok := d.m["g9"]; ok {
		t.Fatalf("drop kept the baseline")
	}
	// Distinct paths remembered per window are bounded.
	for i := range maxPathsPerWindow + 50 {
		d.request("p", fmt.Sprintf("/%d", i), DefaultSensitivity, t0)
	}
	if n := len(d.m["p"].paths); n != maxPathsPerWindow {
		t.Fatalf("%d paths remembered, want %d", n, maxPathsPerWindow)
	}
}

// TestConnChangeApply pins what an update writes into a connection and its
// audit detail, and when the webhook gets the newly sealed secret.
func TestConnChangeApply(t *testing.T) {
	name := "renamed"
	hook := func(url, secret string) connRow {
		return connRow{Connection: Connection{Alerts: Alerts{Sensitivity: 4, WebhookURL: url}}, webhookSecret: secret}
	}
	tests := []struct {
		name       string
		ch         connChange
		c          connRow
		wantSecret string
		wantNew    bool
		wantDetail map[string]string
	}{
		{name: "nothing", c: hook("https://h.example/a", "old"), wantSecret: "old", wantDetail: map[string]string{}},
		{name: "fields", ch: connChange{name: &name, upstream: "https://u.example", placement: &Placement{Type: PlaceQuery, Name: "k"},
			methods: []string{"GET", "POST"}, paths: []string{"/v1"}}, c: hook("", ""),
			wantDetail: map[string]string{"name": "renamed", "upstream_url": "changed", "placement": "query",
				"allowed_methods": "GET,POST", "allowed_paths": "changed"}},
		{name: "new webhook", ch: connChange{alerts: &Alerts{Sensitivity: 5, WebhookURL: "https://h.example/b"}}, c: hook("https://h.example/a", "old"),
			wantSecret: "sealed", wantNew: true, wantDetail: map[string]string{"alerts": "changed"}},
		{name: "first webhook", ch: connChange{alerts: &Alerts{Sensitivity: 5, WebhookURL: "https://h.example/a"}}, c: hook("", ""),
			wantSecret: "sealed", wantNew: true, wantDetail: map[string]string{"alerts": "changed"}},
		{name: "same webhook without a secret", ch: connChange{alerts: &Alerts{Sensitivity: 5, WebhookURL: "https://h.example/a"}}, c: hook("https://h.example/a", ""),
			wantSecret: "sealed", wantNew: true, wantDetail: map[string]string{"alerts": "changed"}},
		{name: "same webhook keeps its secret", ch: connChange{alerts: &Alerts{Sensitivity: 5, WebhookURL: "https://h.example/a"}}, c: hook("https://h.example/a", "old"),
			wantSecret: "old", wantDetail: map[string]string{"alerts": "changed"}},
		{name: "webhook removed", ch: connChange{alerts: &Alerts{Sensitivity: 5}}, c: hook("https://h.example/a", "old"),
			wantDetail: map[string]string{"alerts": "changed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			detail, isNew := tt.ch.apply(&c, "sealed")
			if c.webhookSecret != tt.wantSecret || isNew != tt.wantNew {
				t.Errorf("secret = %q, new = %v; want %q, %v", c.webhookSecret, isNew, tt.wantSecret, tt.wantNew)
			}
			if fmt.Sprint(detail) != fmt.Sprint(tt.wantDetail) || detail == nil {
				t.Errorf("detail = %v, want %v", detail, tt.wantDetail)
			}
			if tt.ch.alerts != nil && c.Alerts != *tt.ch.alerts {
				t.Errorf("alerts = %+v, want %+v", c.Alerts, *tt.ch.alerts)
			}
			if tt.ch.name != nil && c.Name != *tt.ch.name || tt.ch.upstream != "" && c.UpstreamURL != tt.ch.upstream ||
				tt.ch.methods != nil && !slices.Equal(c.AllowedMethods, tt.ch.methods) || tt.ch.paths != nil && !slices.Equal(c.AllowedPaths, tt.ch.paths) ||
				tt.ch.placement != nil && c.Placement != *tt.ch.placement {
				t.Errorf("connection = %+v, change not applied", c.Connection)
			}
		})
	}
}
