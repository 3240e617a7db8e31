package partners_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/partners"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// Static tenant credentials (apitest.Options.TenantTokens) of the hostile
// suite: admins and non-admins of acme and globex.
const (
	acmeAdmin   = "hostile-acme-admin"
	globexAdmin = "hostile-globex-admin"
	acmeUser    = "hostile-acme-user"
	acmeClient  = "hostile-acme-client"
)

func hostileTokens() map[string]tenant.Context {
	return map[string]tenant.Context{
		acmeAdmin:   {TenantID: "acme", Principal: "user:usr_acmeadmin", Tier: "basic", Groups: []string{"admins"}},
		globexAdmin: {TenantID: "globex", Principal: "user:usr_globexadmin", Tier: "basic", Groups: []string{"admins"}},
		acmeUser:    {TenantID: "acme", Principal: "user:usr_acmeuser", Tier: "basic", Groups: []string{"staff"}},
		acmeClient:  {TenantID: "acme", Principal: "client:cli_acmesvc", Tier: "basic", Scopes: []string{"kms:decrypt", "audit:read"}},
	}
}

// send is a raw request: any body, any content type, extra headers.
func send(t *testing.T, method, u, bearer, contentType, body string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// problem decodes a problem+json answer, failing unless it is one.
func problem(t *testing.T, what string, h http.Header, b []byte) api.Problem {
	t.Helper()
	var p api.Problem
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, body %s", what, ct, b)
	}
	if err := json.Unmarshal(b, &p); err != nil || p.Code == "" {
		t.Errorf("%s: not a problem with a code: %s", what, b)
	}
	return p
}

// oauthErr decodes an OAuth error answer's error code.
func oauthErr(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal(b, &e)
	return e.Error
}

// absent drops a field from an object built by object.
type absent struct{}

// object is base with over's fields set (absent{} drops one), as JSON.
func object(t *testing.T, base, over map[string]any) string {
	t.Helper()
	m := maps.Clone(base)
	for k, v := range over {
		if _, ok := v.(absent); ok {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// splice adds raw JSON members (written by hand: escapes json.Marshal
// would not write) to a JSON object.
func splice(obj, members string) string {
	if obj == "{}" {
		return "{" + members + "}"
	}
	return strings.TrimSuffix(obj, "}") + "," + members + "}"
}

func seq(n int, format string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

func numbered(n int, key, value string) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[fmt.Sprintf(key, i)] = value
	}
	return out
}

// statements is n Cedar statements.
func statements(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "permit(principal, action == Action::\"a%d\", resource);\n", i)
	}
	return b.String()
}

// badField is a trust field set to a hostile value, and the problem code
// it must get.
type badField struct {
	name    string
	over    map[string]any // fields set (absent{} drops one)
	raw     string         // members spliced in by hand, when set
	code    string
	creates bool // a case of creation only (on a patch, the field left out keeps the trust's)
}

func badFields() []badField {
	long := strings.Repeat("a", 101)
	return []badField{
		{name: "no scopes", over: map[string]any{"scopes": absent{}}, code: "invalid_scopes", creates: true},
		{name: "empty scopes", over: map[string]any{"scopes": []string{}}, code: "invalid_scopes"},
		{name: "51 scopes", over: map[string]any{"scopes": seq(51, "s%d")}, code: "invalid_scopes"},
		{name: "openid", over: map[string]any{"scopes": []string{"reports:read", "openid"}}, code: "invalid_scopes"},
		{name: "offline_access", over: map[string]any{"scopes": []string{"offline_access"}}, code: "invalid_scopes"},
		{name: "profile", over: map[string]any{"scopes": []string{"profile"}}, code: "invalid_scopes"},
		{name: "uppercase scope", over: map[string]any{"scopes": []string{"Reports:read"}}, code: "invalid_scopes"},
		{name: "101-character scope", over: map[string]any{"scopes": []string{long}}, code: "invalid_scopes"},
		{name: "empty scope", over: map[string]any{"scopes": []string{""}}, code: "invalid_scopes"},
		{name: "scope with a space", over: map[string]any{"scopes": []string{"reports:read kms:decrypt"}}, code: "invalid_scopes"},
		{name: "scope with a NUL", raw: `"scopes":["reports:read\u0000"]`, code: "invalid_scopes"},
		{name: "network /33", over: map[string]any{"source_networks": []string{"10.0.0.0/33"}}, code: "invalid_networks"},
		{name: "network with a zone", over: map[string]any{"source_networks": []string{"fe80::1%eth0"}}, code: "invalid_networks"},
		{name: "prefix with a zone", over: map[string]any{"source_networks": []string{"fe80::1%eth0/64"}}, code: "invalid_networks"},
		{name: "not a network", over: map[string]any{"source_networks": []string{"not-a-net"}}, code: "invalid_networks"},
		{name: "empty network", over: map[string]any{"source_networks": []string{""}}, code: "invalid_networks"},
		{name: "51 networks", over: map[string]any{"source_networks": seq(51, "10.%d.0.0/16")}, code: "invalid_networks"},
		{name: "tag partner", over: map[string]any{"tags": map[string]string{"partner": "prt_x"}}, code: "invalid_tags"},
		{name: "tag trust", over: map[string]any{"tags": map[string]string{"trust": "trs_x"}}, code: "invalid_tags"},
		{name: "tag key Region", over: map[string]any{"tags": map[string]string{"Region": "eu"}}, code: "invalid_tags"},
		{name: "tag key of 33", over: map[string]any{"tags": map[string]string{"k" + strings.Repeat("x", 32): "v"}}, code: "invalid_tags"},
		{name: "empty tag key", over: map[string]any{"tags": map[string]string{"": "v"}}, code: "invalid_tags"},
		{name: "tag key with a digit first", over: map[string]any{"tags": map[string]string{"1st": "v"}}, code: "invalid_tags"},
		{name: "tag value of 257 bytes", over: map[string]any{"tags": map[string]string{"plan": strings.Repeat("v", 257)}}, code: "invalid_tags"},
		{name: "tag value of 129 two-byte characters", over: map[string]any{"tags": map[string]string{"plan": strings.Repeat("é", 129)}}, code: "invalid_tags"},
		{name: "tag key a lone surrogate", raw: `"tags":{"\ud800":"v"}`, code: "invalid_tags"},
		{name: "tag value with NUL", raw: `"tags":{"plan":"a\u0000b"}`, code: "invalid_tags"},
		{name: "tag value with a newline", raw: `"tags":{"plan":"a\nb"}`, code: "invalid_tags"},
		{name: "tag value with DEL", raw: `"tags":{"plan":"a\u007fb"}`, code: "invalid_tags"},
		{name: "partner tag partner", over: map[string]any{"partner_tags": []string{"partner"}}, code: "invalid_tags"},
		{name: "partner tag trust", over: map[string]any{"partner_tags": []string{"trust"}}, code: "invalid_tags"},
		{name: "partner tag Region", over: map[string]any{"partner_tags": []string{"Region"}}, code: "invalid_tags"},
		{name: "empty partner tag", over: map[string]any{"partner_tags": []string{""}}, code: "invalid_tags"},
		{name: "partner tags overlap tags", over: map[string]any{"tags": map[string]string{"region": "eu"}, "partner_tags": []string{"region"}}, code: "invalid_tags"},
		{name: "21 tags", over: map[string]any{"tags": numbered(11, "t%d", "v"), "partner_tags": seq(10, "p%d")}, code: "invalid_tags"},
		{name: "21 tenant tags", over: map[string]any{"tags": numbered(21, "t%d", "v")}, code: "invalid_tags"},
		{name: "session 59", over: map[string]any{"max_session_seconds": 59}, code: "invalid_session"},
		{name: "session 3601", over: map[string]any{"max_session_seconds": 3601}, code: "invalid_session"},
		{name: "session -1", over: map[string]any{"max_session_seconds": -1}, code: "invalid_session"},
		// 18446744134 s is 60.29 s once multiplied into a time.Duration
		// that wraps around: it must be refused, not stored as 60.
		{name: "session that overflows to a minute", over: map[string]any{"max_session_seconds": 18446744134}, code: "invalid_session"},
		{name: "session of int64 max", over: map[string]any{"max_session_seconds": int64(1<<63 - 1)}, code: "invalid_session"},
		{name: "policy not Cedar", over: map[string]any{"policy": "allow everything please"}, code: "invalid_policy"},
		{name: "policy with a principal slot", over: map[string]any{"policy": `permit(principal == ?principal, action, resource);`}, code: "invalid_policy"},
		{name: "policy with a resource slot", over: map[string]any{"policy": `permit(principal, action, resource in ?resource);`}, code: "invalid_policy"},
		{name: "policy of 101 statements", over: map[string]any{"policy": statements(101)}, code: "invalid_policy"},
		{name: "policy of comments only", over: map[string]any{"policy": "// nothing"}, code: "invalid_policy"},
		{name: "policy over 64 KiB", over: map[string]any{"policy": statements(1) + "//" + strings.Repeat("x", 64<<10)}, code: "invalid_policy"},
		{name: "description of 501", over: map[string]any{"description": strings.Repeat("d", 501)}, code: "invalid_description"},
		{name: "description with a control character", raw: `"description":"a\u001bb"`, code: "invalid_description"},
		{name: "scopes a string", over: map[string]any{"scopes": "reports:read"}, code: "invalid_field_type"},
		{name: "session a string", over: map[string]any{"max_session_seconds": "900"}, code: "invalid_field_type"},
		{name: "session a fraction", over: map[string]any{"max_session_seconds": 900.5}, code: "invalid_field_type"},
		{name: "networks a string", over: map[string]any{"source_networks": "10.0.0.0/8"}, code: "invalid_field_type"},
		{name: "tags an array", over: map[string]any{"tags": []string{"a=b"}}, code: "invalid_field_type"},
		{name: "tag value a number", over: map[string]any{"tags": map[string]any{"plan": 1}}, code: "invalid_field_type"},
		{name: "policy an object", over: map[string]any{"policy": map[string]any{}}, code: "invalid_field_type"},
		{name: "unknown field external_id", over: map[string]any{"external_id": "bhx_mine"}, code: "unknown_field"},
		{name: "unknown field status", over: map[string]any{"status": "active"}, code: "unknown_field"},
		{name: "unknown field tenant_id", over: map[string]any{"tenant_id": "globex"}, code: "unknown_field"},
		{name: "unknown field Scopes", over: map[string]any{"Scopes ": []string{"x"}}, code: "unknown_field"},
	}
}

// TestHostileTrustInput: every malformed trust, created or patched by the
// operator or by the tenant's admin, is a 400 problem with a stable code,
// and leaves the tenant's trusts as they were.
func TestHostileTrustInput(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{TenantTokens: hostileTokens()})
		f.tenant(t, "acme", "basic")
		p := f.partner(t, "Hostile Co")
		q := f.partner(t, "Other Co")
		existing := f.trust(t, "acme", api.CreateTrust{Partner: q.ID, Scopes: []string{"reports:read"}, PartnerTags: []string{"region"},
			Tags: map[string]string{"plan": "gold"}})
		trusts := f.env.URL + "/v1/tenants/acme/trusts"
		list := func() []byte {
			t.Helper()
			status, _, b := send(t, "GET", trusts, apitest.AdminToken, "", "")
			if status != 200 {
				t.Fatalf("list: %d %s", status, b)
			}
			return b
		}
		get := func() []byte {
			t.Helper()
			status, _, b := send(t, "GET", trusts+"/"+existing.ID, apitest.AdminToken, "", "")
			if status != 200 {
				t.Fatalf("get: %d %s", status, b)
			}
			return b
		}
		before, beforeTrust := list(), get()
		refused := func(who, what, method, u, body, code string, status ...int) {
			t.Helper()
			got, h, b := send(t, method, u, who, "application/json", body)
			want := 400
			if len(status) > 0 {
				want = status[0]
			}
			if got != want {
				t.Errorf("%s: %d %s, want %d %s", what, got, b, want, code)
				return
			}
			if pr := problem(t, what, h, b); pr.Code != code || pr.Status != want {
				t.Errorf("%s: code %q status %d, want %q", what, pr.Code, pr.Status, code)
			}
		}
		createBase := map[string]any{"partner": p.ID, "scopes": []string{"reports:read"}}
		for _, who := range []struct{ name, token string }{{"operator", apitest.AdminToken}, {"acme's admin", acmeAdmin}} {
			for _, c := range badFields() {
				body := object(t, createBase, c.over)
				if c.raw != "" {
					body = splice(body, c.raw)
				}
				refused(who.token, who.name+" creates, "+c.name, "POST", trusts, body, c.code)
				if c.creates {
					continue
				}
				body = object(t, map[string]any{}, c.over)
				if c.raw != "" {
					body = splice(body, c.raw)
				}
				refused(who.token, who.name+" patches, "+c.name, "PATCH", trusts+"/"+existing.ID, body, c.code)
			}
			// The partner, named wrong.
			for name, partner := range map[string]any{
				"an unknown partner":           ids.New(partners.PartnerPrefix),
				"a malformed partner id":       "prt_../../x",
				"no partner":                   "",
				"a trust id":                   existing.ID,
				"a client id":                  ids.New("cli"),
				"a partner id with a NUL":      p.ID + "\x00",
				"a partner id of 10,000 bytes": "prt_" + strings.Repeat("a", 10000),
			} {
				refused(who.token, who.name+" creates for "+name, "POST", trusts, object(t, createBase, map[string]any{"partner": partner}), "partner_not_found")
			}
			refused(who.token, who.name+" creates for a numeric partner", "POST", trusts, object(t, createBase, map[string]any{"partner": 7}), "invalid_field_type")
			// Bodies that are not one JSON object.
			for name, c := range map[string]struct{ body, code string }{
				"an empty body":       {"", "invalid_json"},
				"an array":            {"[]", "invalid_json"},
				"a truncated object":  {`{"partner":"` + p.ID + `"`, "invalid_json"},
				"two objects":         {object(t, createBase, nil) + object(t, createBase, nil), "invalid_json"},
				"an object and junk":  {object(t, createBase, nil) + "x", "invalid_json"},
				"null":                {"null", ""},
				"a string":            {`"trust"`, "invalid_json"},
				"a body over the API": {splice(object(t, createBase, nil), `"description":"`+strings.Repeat("d", 1<<20)+`"`), "body_too_large"},
			} {
				got, h, b := send(t, "POST", trusts, who.token, "application/json", c.body)
				if got != 400 && !(c.code == "body_too_large" && got == 413) {
					t.Errorf("%s posts %s: %d %s", who.name, name, got, b)
					continue
				}
				if pr := problem(t, name, h, b); c.code != "" && pr.Code != c.code {
					t.Errorf("%s posts %s: code %q, want %q", who.name, name, pr.Code, c.code)
				}
			}
			got, h, b := send(t, "POST", trusts, who.token, "text/plain", object(t, createBase, nil))
			if pr := problem(t, "text/plain", h, b); got != 400 || pr.Code != "unsupported_media_type" {
				t.Errorf("%s posts text/plain: %d %s", who.name, got, b)
			}
			// Patches that only a patch can get wrong.
			for name, c := range map[string]struct{ body, code string }{
				"a session of 0":                   {`{"max_session_seconds":0}`, "invalid_session"},
				"another partner":                  {`{"partner":"` + p.ID + `"}`, "unknown_field"},
				"a status":                         {`{"status":"suspended"}`, "unknown_field"},
				"an external id hint":              {`{"external_id_hint":"AAAA"}`, "unknown_field"},
				"a tag the partner may set":        {`{"tags":{"region":"eu"}}`, "invalid_tags"},
				"a partner tag the tenant sets":    {`{"partner_tags":["plan"]}`, "invalid_tags"},
				"10 more partner tags than fit":    {fmt.Sprintf(`{"partner_tags":%s}`, mustJSON(seq(20, "p%d"))), "invalid_tags"},
				"scopes of an OpenID Connect user": {`{"scopes":["openid","email"]}`, "invalid_scopes"},
			} {
				refused(who.token, who.name+" patches "+name, "PATCH", trusts+"/"+existing.ID, c.body, c.code)
			}
			refused(who.token, who.name+" patches a trust that does not exist", "PATCH", trusts+"/"+ids.New(partners.TrustPrefix),
				`{"description":"x"}`, "trust_not_found", 404)
			// A second trust in the same partner.
			refused(who.token, who.name+" trusts the partner twice", "POST", trusts, object(t, createBase, map[string]any{"partner": q.ID}), "trust_exists", 409)
		}
		if after := list(); !bytes.Equal(after, before) {
			t.Fatalf("the refusals changed the trusts:\nbefore %s\nafter  %s", before, after)
		}
		if after := get(); !bytes.Equal(after, beforeTrust) {
			t.Fatalf("the refused patches changed the trust:\nbefore %s\nafter  %s", beforeTrust, after)
		}

		// The bounds themselves are accepted.
		status, _, b := send(t, "PATCH", trusts+"/"+existing.ID, acmeAdmin, "application/json", mustJSON(map[string]any{
			"description":         strings.Repeat("d", 500),
			"scopes":              seq(50, "s%02d"+strings.Repeat("x", 97)),
			"source_networks":     append(seq(49, "10.%d.0.0/16"), "127.0.0.1"),
			"tags":                numbered(10, "t%d"+strings.Repeat("x", 30), strings.Repeat("v", 256)),
			"partner_tags":        seq(10, "p%d"),
			"max_session_seconds": 3600,
			"policy":              statements(100),
		}))
		var tr api.Trust
		json.Unmarshal(b, &tr)
		if status != 200 || len(tr.Scopes) != 50 || len(tr.Scopes[0]) != 100 || len(tr.SourceNetworks) != 50 || tr.SourceNetworks[49] != "127.0.0.1/32" ||
			len(tr.Tags) != 10 || len(tr.PartnerTags) != 10 || tr.MaxSessionSeconds != 3600 {
			t.Fatalf("a patch at every bound: %d %s", status, b)
		}
		status, _, b = send(t, "PATCH", trusts+"/"+existing.ID, apitest.AdminToken, "application/json", `{"max_session_seconds":60}`)
		if json.Unmarshal(b, &tr); status != 200 || tr.MaxSessionSeconds != 60 {
			t.Fatalf("a session of 60: %d %s", status, b)
		}
		// A lone surrogate in a tag value never reaches the store as such:
		// encoding/json reads it as U+FFFD.
		status, _, b = send(t, "PATCH", trusts+"/"+existing.ID, apitest.AdminToken, "application/json", `{"tags":{"plan":"\ud800"}}`)
		if json.Unmarshal(b, &tr); status != 200 || tr.Tags["plan"] != "\uFFFD" {
			t.Fatalf("a lone surrogate: %d %s", status, b)
		}
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestHostileCrossTenant: globex's admin cannot tell acme's trust from
// one that does not exist, nor reach it through acme's path; a tenant
// admin cannot manage partners, and a tenant credential that is not an
// admin's cannot manage trusts.
func TestHostileCrossTenant(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{TenantTokens: hostileTokens()})
		f.tenant(t, "acme", "basic")
		f.tenant(t, "globex", "basic")
		p := f.partner(t, "Reporting Co")
		acme := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
		globex := f.trust(t, "globex", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
		ghost := ids.New(partners.TrustPrefix)
		trustURL := func(tenant, id string) string { return f.env.URL + "/v1/tenants/" + tenant + "/trusts/" + id }
		getAcme := func() []byte {
			t.Helper()
			status, _, b := send(t, "GET", trustURL("acme", acme.ID), apitest.AdminToken, "", "")
			if status != 200 {
				t.Fatalf("acme's trust: %d %s", status, b)
			}
			return b
		}
		before := getAcme()
		// norm drops the request id and names the id and tenant alike.
		norm := func(b []byte, id, tenant string) []byte {
			b = bytes.ReplaceAll(stripRequestID(b), []byte(id), []byte("ID"))
			return bytes.ReplaceAll(b, []byte(tenant), []byte("TENANT"))
		}
		ops := []struct{ method, suffix, body string }{
			{"GET", "", ""}, {"PATCH", "", `{"description":"mine now","scopes":["kms:decrypt"]}`}, {"DELETE", "", ""},
			{"POST", "/suspend", ""}, {"POST", "/resume", ""}, {"POST", "/external-id", ""},
		}
		for _, op := range ops {
			what := op.method + " " + op.suffix
			ct := ""
			if op.body != "" {
				ct = "application/json"
			}
			st1, h1, b1 := send(t, op.method, trustURL("globex", acme.ID)+op.suffix, globexAdmin, ct, op.body)
			st2, _, b2 := send(t, op.method, trustURL("globex", ghost)+op.suffix, globexAdmin, ct, op.body)
			if pr := problem(t, what, h1, b1); st1 != 404 || pr.Code != "trust_not_found" {
				t.Errorf("globex's admin, %s on acme's trust: %d %s", what, st1, b1)
			}
			if st1 != st2 || !bytes.Equal(norm(b1, acme.ID, "globex"), norm(b2, ghost, "globex")) {
				t.Errorf("%s: acme's trust %d %s\nno trust %d %s", what, st1, b1, st2, b2)
			}
			st3, h3, b3 := send(t, op.method, trustURL("acme", acme.ID)+op.suffix, globexAdmin, ct, op.body)
			st4, _, b4 := send(t, op.method, trustURL("nosuch", acme.ID)+op.suffix, globexAdmin, ct, op.body)
			if pr := problem(t, what, h3, b3); st3 != 404 || pr.Code != "tenant_not_found" {
				t.Errorf("globex's admin, %s through acme's path: %d %s", what, st3, b3)
			}
			if st3 != st4 || !bytes.Equal(norm(b3, acme.ID, "acme"), norm(b4, acme.ID, "nosuch")) {
				t.Errorf("%s: acme %d %s\nnosuch %d %s", what, st3, b3, st4, b4)
			}
			// Neither acme's admin reaches globex's trust through acme.
			st5, _, b5 := send(t, op.method, trustURL("acme", globex.ID)+op.suffix, acmeAdmin, ct, op.body)
			if st5 != 404 || !strings.Contains(string(b5), `"trust_not_found"`) {
				t.Errorf("acme's admin, %s on globex's trust: %d %s", what, st5, b5)
			}
		}
		// A made-up id of any length or shape is the same 404, its echo clipped.
		for _, id := range []string{strings.Repeat("trs_a", 2000), "trs_%00", "trs_a/../b", acme.ID + "x", strings.ToUpper(acme.ID)} {
			status, h, b := send(t, "GET", trustURL("globex", url.PathEscape(id)), globexAdmin, "", "")
			if pr := problem(t, "id "+id[:min(len(id), 20)], h, b); status != 404 || pr.Code != "trust_not_found" || len(b) > 1000 {
				t.Errorf("trust id %.20q…: %d %s", id, status, b)
			}
		}
		// Nor create one in acme, nor see acme's in globex's list.
		if status, _, b := send(t, "POST", f.env.URL+"/v1/tenants/acme/trusts", globexAdmin, "application/json",
			`{"partner":"`+p.ID+`","scopes":["reports:read"]}`); status != 404 || !strings.Contains(string(b), `"tenant_not_found"`) {
			t.Errorf("globex's admin creates in acme: %d %s", status, b)
		}
		status, _, b := send(t, "GET", f.env.URL+"/v1/tenants/globex/trusts", globexAdmin, "", "")
		if status != 200 || strings.Contains(string(b), acme.ID) || !strings.Contains(string(b), globex.ID) {
			t.Errorf("globex's list: %d %s", status, b)
		}
		if after := getAcme(); !bytes.Equal(after, before) {
			t.Fatalf("acme's trust changed:\nbefore %s\nafter  %s", before, after)
		}
		token(t, f.env.URL, p, "acme", acme.ExternalID, nil) // its external id still works: nothing rotated it

		// A tenant admin is no operator.
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/v1/partners", ""}, {"POST", "/v1/partners", `{"name":"Mine"}`}, {"GET", "/v1/partners/" + p.ID, ""},
			{"DELETE", "/v1/partners/" + p.ID, ""}, {"POST", "/v1/partners/" + p.ID + "/secret", ""},
		} {
			ct := ""
			if r.body != "" {
				ct = "application/json"
			}
			status, h, b := send(t, r.method, f.env.URL+r.path, acmeAdmin, ct, r.body)
			if pr := problem(t, r.path, h, b); status != 403 || pr.Code != "operator_required" {
				t.Errorf("acme's admin, %s %s: %d %s", r.method, r.path, status, b)
			}
		}
		if page, err := f.env.Admin.ListPartners(f.ctx, 0, ""); err != nil || len(page.Items) != 1 {
			t.Fatalf("partners: %+v %v", page, err)
		}
		token(t, f.env.URL, p, "acme", acme.ExternalID, nil) // its secret was not rotated either

		// A tenant credential that is not an admin's manages no trust.
		for _, who := range []string{acmeUser, acmeClient} {
			for _, r := range []struct{ method, path, body string }{
				{"GET", "", ""}, {"POST", "", `{"partner":"` + p.ID + `","scopes":["reports:read"]}`},
				{"GET", "/" + acme.ID, ""}, {"PATCH", "/" + acme.ID, `{"description":"x"}`}, {"DELETE", "/" + acme.ID, ""},
				{"POST", "/" + acme.ID + "/suspend", ""}, {"POST", "/" + acme.ID + "/resume", ""}, {"POST", "/" + acme.ID + "/external-id", ""},
			} {
				ct := ""
				if r.body != "" {
					ct = "application/json"
				}
				status, h, b := send(t, r.method, f.env.URL+"/v1/tenants/acme/trusts"+r.path, who, ct, r.body)
				if pr := problem(t, r.path, h, b); status != 403 || pr.Code != "tenant_admin_required" {
					t.Errorf("%s, %s trusts%s: %d %s", who, r.method, r.path, status, b)
				}
			}
		}
		if after := getAcme(); !bytes.Equal(after, before) {
			t.Fatalf("acme's trust changed:\nbefore %s\nafter  %s", before, after)
		}
	})
}

// exchange posts a raw form to the token endpoint, with HTTP Basic
// credentials when user is set.
func exchange(t *testing.T, base, method, user, pass string, form url.Values, header ...string) (int, http.Header, []byte) {
	t.Helper()
	var body io.Reader
	u := base + "/oauth/token"
	if method == "GET" {
		u += "?" + form.Encode()
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// partnerForm is a partner's token exchange for tenant with externalID,
// extra's values added (replacing the form's own).
func partnerForm(tenant, externalID string, extra url.Values) url.Values {
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {externalID},
		"subject_token_type": {client.PartnerTokenType}, "tenant": {tenant}}
	for k, v := range extra {
		form[k] = v
	}
	return form
}

// TestHostileTokenRequests: a partner's malformed token requests are
// refused; whatever depends on the trust (scopes, tags) is explained only
// after the right external id, and otherwise answered with the one
// invalid_grant; an unauthenticated request learns nothing of the tenant.
func TestHostileTokenRequests(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{})
		for _, id := range []string{"acme", "initech"} {
			f.tenant(t, id, "basic")
		}
		p := f.partner(t, "Reporting Co")
		q := f.partner(t, "Other Co")
		tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"kms:decrypt", "reports:read"}, PartnerTags: []string{"region"},
			Tags: map[string]string{"plan": "gold"}})
		f.trust(t, "acme", api.CreateTrust{Partner: q.ID, Scopes: []string{"reports:read"}})
		ext := tr.ExternalID
		wrong := "bhx_" + strings.Repeat("A", 43)

		status, genericBody := assume(t, f.env.URL, p, "acme", wrong, nil)
		if status != 400 || oauthErr(genericBody) != "invalid_grant" {
			t.Fatalf("a wrong external id: %d %s", status, genericBody)
		}
		generic := func(what string, status int, b []byte) {
			t.Helper()
			if status != 400 || !bytes.Equal(b, genericBody) {
				t.Errorf("%s: %d %s, want the generic refusal %s", what, status, b, genericBody)
			}
		}

		// Malformed whatever the tenant: refused before the trust is read.
		for name, c := range map[string]struct {
			extra url.Values
			code  string
		}{
			"subject_token twice":          {url.Values{"subject_token": {ext, ext}}, "invalid_request"},
			"tenant twice":                 {url.Values{"tenant": {"acme", "initech"}}, "invalid_request"},
			"the same tenant twice":        {url.Values{"tenant": {"acme", "acme"}}, "invalid_request"},
			"scope twice":                  {url.Values{"scope": {"reports:read", "kms:decrypt"}}, "invalid_request"},
			"requested_token_type twice":   {url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token", "urn:ietf:params:oauth:token-type:access_token"}}, "invalid_request"},
			"a tag without =":              {url.Values{"tag": {"region"}}, "invalid_request"},
			"a tag without a key":          {url.Values{"tag": {"=eu"}}, "invalid_request"},
			"a tag key twice":              {url.Values{"tag": {"region=eu", "region=us"}}, "invalid_request"},
			"the same tag twice":           {url.Values{"tag": {"region=eu", "region=eu"}}, "invalid_request"},
			"21 tags":                      {url.Values{"tag": seq(21, "k%d=v")}, "invalid_request"},
			"an actor_token":               {url.Values{"actor_token": {"x"}, "actor_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}, "invalid_request"},
			"an actor_token_type only":     {url.Values{"actor_token_type": {"urn:ietf:params:oauth:token-type:jwt"}}, "invalid_request"},
			"an id_token requested":        {url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}, "invalid_request"},
			"a refresh token requested":    {url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}}, "invalid_request"},
			"another service's audience":   {url.Values{"audience": {"https://billing.example.com"}}, "invalid_target"},
			"another service's resource":   {url.Values{"resource": {"https://billing.example.com/api"}}, "invalid_target"},
			"the API and another audience": {url.Values{"audience": {f.env.URL, "https://billing.example.com"}}, "invalid_target"},
			"tenant A":                     {url.Values{"tenant": {"A"}}, "invalid_request"},
			"tenant ../x":                  {url.Values{"tenant": {"../x"}}, "invalid_request"},
			"no tenant":                    {url.Values{"tenant": {""}}, "invalid_request"},
			"tenant with a NUL":            {url.Values{"tenant": {"acme\x00"}}, "invalid_request"},
			"a tenant of 1,000 characters": {url.Values{"tenant": {strings.Repeat("a", 1000)}}, "invalid_request"},
		} {
			status, h, b := exchange(t, f.env.URL, "POST", p.ID, p.ClientSecret, partnerForm("acme", ext, c.extra))
			if status != 400 || oauthErr(b) != c.code || h.Get("Cache-Control") != "no-store" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Errorf("%s: %d %v %s, want 400 %s", name, status, h, b, c.code)
			}
			if strings.Contains(string(b), `"access_token":`) {
				t.Errorf("%s: a token: %s", name, b)
			}
		}

		// Asking for what the trust does not give: said only after the
		// right external id.
		for name, c := range map[string]struct {
			extra url.Values
			code  string
		}{
			"a tag the trust does not let it set": {url.Values{"tag": {"plan=platinum"}}, "invalid_request"},
			"a tag key in capitals":               {url.Values{"tag": {"Region=eu"}}, "invalid_request"},
			"the reserved tag partner":            {url.Values{"tag": {"partner=" + q.ID}}, "invalid_request"},
			"the reserved tag trust":              {url.Values{"tag": {"trust=trs_x"}}, "invalid_request"},
			"a tag value of 300 bytes":            {url.Values{"tag": {"region=" + strings.Repeat("e", 300)}}, "invalid_request"},
			"a tag value not UTF-8":               {url.Values{"tag": {"region=\xff"}}, "invalid_request"},
			"a tag value with a control":          {url.Values{"tag": {"region=e\x01u"}}, "invalid_request"},
			"a scope outside the trust":           {url.Values{"scope": {"kms:encrypt"}}, "invalid_scope"},
			"an OpenID Connect scope":             {url.Values{"scope": {"openid"}}, "invalid_scope"},
			"51 scopes":                           {url.Values{"scope": {strings.Join(seq(51, "reports:read%d"), " ")}}, "invalid_scope"},
		} {
			status, h, b := exchange(t, f.env.URL, "POST", p.ID, p.ClientSecret, partnerForm("acme", ext, c.extra))
			if status != 400 || oauthErr(b) != c.code || h.Get("Cache-Control") != "no-store" {
				t.Errorf("%s with the right external id: %d %s, want 400 %s", name, status, b, c.code)
			}
			status, _, b = exchange(t, f.env.URL, "POST", p.ID, p.ClientSecret, partnerForm("acme", wrong, c.extra))
			generic(name+" with a wrong external id", status, b)
			status, _, b = exchange(t, f.env.URL, "POST", p.ID, p.ClientSecret, partnerForm("acme", "", c.extra))
			generic(name+" with no external id", status, b)
			status, _, b = exchange(t, f.env.URL, "POST", p.ID, p.ClientSecret, partnerForm("initech", ext, c.extra))
			generic(name+" in a tenant that does not trust it", status, b)
			status, _, b = exchange(t, f.env.URL, "POST", p.ID, p.ClientSecret, partnerForm("nosuch", ext, c.extra))
			generic(name+" in no tenant", status, b)
			status, _, b = exchange(t, f.env.URL, "POST", q.ID, q.ClientSecret, partnerForm("acme", ext, c.extra))
			generic(name+" as another partner with acme's external id", status, b)
		}
		// The trust's own tags hold whatever the partner asks.
		c := claims(t, token(t, f.env.URL, p, "acme", ext, url.Values{"tag": {"region=eu"}, "scope": {"reports:read reports:read"}}))
		if tags, _ := c["tags"].(map[string]any); len(tags) != 4 || tags["plan"] != "gold" || tags["region"] != "eu" || tags["partner"] != p.ID ||
			tags["trust"] != tr.ID || c["scope"] != "reports:read" {
			t.Fatalf("claims: %v", c)
		}

		// Not a form, too big a form, not a POST.
		status, _, b := exchange(t, f.env.URL, "POST", p.ID, p.ClientSecret, partnerForm("acme", ext, url.Values{"pad": {strings.Repeat("x", 70<<10)}}))
		if status != 400 || oauthErr(b) != "invalid_request" {
			t.Errorf("a 70 KB form: %d %s", status, b)
		}
		status, h, b := exchange(t, f.env.URL, "GET", p.ID, p.ClientSecret, partnerForm("acme", ext, nil))
		if status != 405 || oauthErr(b) != "invalid_request" || h.Get("Allow") != "POST" || strings.Contains(string(b), `"access_token":`) {
			t.Errorf("GET: %d %v %s", status, h, b)
		}

		// Not this partner, or no partner at all: invalid_client, and the
		// same answer whether or not the tenant trusts the partner, or
		// exists.
		svc, err := f.env.Admin.CreateOAuthClient(f.ctx, "acme", client.CreateOAuthClient{Name: "svc",
			GrantTypes: []string{"urn:ietf:params:oauth:grant-type:token-exchange", "client_credentials"}, Scopes: []string{"reports:read"}})
		if err != nil {
			t.Fatal(err)
		}
		before := f.assumed(t, "acme")
		var first []byte
		for name, creds := range map[string][2]string{
			"another partner's secret":       {p.ID, q.ClientSecret},
			"an unknown partner":             {ids.New(partners.PartnerPrefix), ids.Secret("bhp")},
			"an unknown partner, p's secret": {ids.New(partners.PartnerPrefix), p.ClientSecret},
			"a tenant's client":              {svc.ClientID, svc.ClientSecret},
			"a non-prt client id":            {"cli_" + strings.TrimPrefix(p.ID, "prt_"), p.ClientSecret},
			"an empty secret":                {p.ID, ""},
			"no credentials":                 {"", ""},
			"a partner id with a NUL":        {p.ID + "\x00", p.ClientSecret},
		} {
			for _, tenant := range []string{"acme", "initech", "nosuch", "A"} {
				status, h, b := exchange(t, f.env.URL, "POST", creds[0], creds[1], partnerForm(tenant, ext, nil))
				if status != 401 || oauthErr(b) != "invalid_client" || h.Get("WWW-Authenticate") == "" {
					t.Errorf("%s for %s: %d %s", name, tenant, status, b)
				}
				if first == nil {
					first = b
				} else if !bytes.Equal(b, first) {
					t.Errorf("%s for %s answers %s, others %s", name, tenant, b, first)
				}
			}
		}
		// Both client_secret_basic and client_secret_post: refused as
		// ambiguous, before anything of the tenant.
		status, _, b = exchange(t, f.env.URL, "POST", p.ID, p.ClientSecret, partnerForm("acme", ext, url.Values{"client_secret": {p.ClientSecret}}))
		if status != 400 || oauthErr(b) != "invalid_request" {
			t.Errorf("two client authentications: %d %s", status, b)
		}
		if after := f.assumed(t, "acme"); after[audit.Denied] != before[audit.Denied] {
			t.Errorf("unauthenticated requests reached acme's chain: %v then %v", before, after)
		}
	})
}

// TestHostilePartnerFlood: 300 token requests of made-up partners leave
// the node responsive; each is audited once at most, in the platform's
// chain, never in the tenant's. A partner assuming its trust again and
// again changes no state: the node keeps its cached reads.
func TestHostilePartnerFlood(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{})
		f.tenant(t, "acme", "basic")
		p := f.partner(t, "Reporting Co")
		tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
		platform, acme := f.assumed(t, "")[audit.Denied], f.assumed(t, "acme")

		const flood = 300
		var wg sync.WaitGroup
		var mu sync.Mutex
		statuses := map[int]int{}
		work := make(chan int)
		for range 16 {
			wg.Go(func() {
				for range work {
					form := partnerForm("acme", ids.Secret("bhx"), nil)
					req, _ := http.NewRequest("POST", f.env.URL+"/oauth/token", strings.NewReader(form.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(ids.New(partners.PartnerPrefix), ids.Secret("bhp"))
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					statuses[resp.StatusCode]++
					mu.Unlock()
				}
			})
		}
		for i := range flood {
			work <- i
		}
		close(work)
		wg.Wait()
		if statuses[401]+statuses[429] != flood {
			t.Fatalf("the flood's answers: %v", statuses)
		}
		start := time.Now()
		token(t, f.env.URL, p, "acme", tr.ExternalID, nil)
		if d := time.Since(start); d > time.Second {
			t.Errorf("an assumption after the flood took %s", d)
		}
		n := f.assumed(t, "")[audit.Denied] - platform
		t.Logf("the flood of %d wrote %d events to the platform's chain (answers %v)", flood, n, statuses)
		if n < 1 || n > flood {
			t.Errorf("the platform's chain holds %d refusals of %d requests", n, flood)
		}
		if got := f.assumed(t, "acme"); got[audit.Denied] != acme[audit.Denied] || got[audit.Success] != acme[audit.Success]+1 {
			t.Errorf("acme's chain: %v, then %v", acme, got)
		}

		// Assuming is no change of state: the node's caches stay.
		tok := token(t, f.env.URL, p, "acme", tr.ExternalID, nil)
		changes := f.env.Audit.Changes()
		for range 20 {
			token(t, f.env.URL, p, "acme", tr.ExternalID, nil)
		}
		if got := f.env.Audit.Changes(); got != changes {
			t.Errorf("20 assumptions moved the node's change count from %d to %d: each threw away every cached read", changes, got)
		}
		if got := f.assumed(t, "acme")[audit.Success]; got != acme[audit.Success]+22 {
			t.Errorf("acme's chain holds %d assumptions, want %d", got, acme[audit.Success]+22)
		}
		if status, body := call(t, "POST", f.env.URL+"/v1/tenants/acme/authorize", tok, readDoc("1", nil)); status != 200 {
			t.Fatalf("authorize: %d %s", status, body)
		}
	})
}

// readDoc is an authorize request to read Doc::id, with entities.
func readDoc(id string, entities []map[string]any) map[string]any {
	r := map[string]any{"action": map[string]string{"type": "Action", "id": "read"}, "resource": map[string]string{"type": "Doc", "id": id}}
	if entities != nil {
		r["entities"] = entities
	}
	return r
}

// decide asks for a decision with tok, failing unless it gets one.
func decide(t *testing.T, base, tok string, req map[string]any) api.Decision {
	t.Helper()
	status, body := call(t, "POST", base+"/v1/tenants/acme/authorize", tok, req)
	if status != 200 {
		t.Fatalf("authorize: %d %s", status, body)
	}
	var d api.Decision
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// eventually polls check for up to a second.
func eventually(t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		ok, got := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after a second, %s", what, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSessionTagsReachCedar: the session tags are the partner
// principal's in the tenant's policies, whatever the request's entities
// say; the trust's policy bounds every decision, for tokens issued
// before it changed too.
func TestSessionTagsReachCedar(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{})
		f.tenant(t, "acme", "basic")
		p := f.partner(t, "Reporting Co")
		q := f.partner(t, "Other Co")
		tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}, PartnerTags: []string{"region"},
			Tags: map[string]string{"plan": "gold"}})
		if _, err := f.env.Admin.CreatePolicy(f.ctx, "acme", client.PolicyInput{Statement: `permit(principal is Bulkhead::Partner, action == Action::"read", resource)
			when { principal.tags.region == "eu" && principal.tags.plan == "gold" };`}); err != nil {
			t.Fatal(err)
		}
		eu := token(t, f.env.URL, p, "acme", tr.ExternalID, url.Values{"tag": {"region=eu"}})
		us := token(t, f.env.URL, p, "acme", tr.ExternalID, url.Values{"tag": {"region=us"}})
		none := token(t, f.env.URL, p, "acme", tr.ExternalID, nil)
		if d := decide(t, f.env.URL, eu, readDoc("1", nil)); d.Decision != "allow" {
			t.Fatalf("region eu: %+v", d)
		}
		for name, tok := range map[string]string{"region us": us, "no region": none} {
			if d := decide(t, f.env.URL, tok, readDoc("1", nil)); d.Decision != "deny" {
				t.Fatalf("%s: %+v", name, d)
			}
		}
		// The request's entities cannot give the partner other tags.
		forged := []map[string]any{{"uid": map[string]string{"type": "Bulkhead::Partner", "id": p.ID},
			"attrs": map[string]any{"trust": tr.ID, "tags": map[string]string{"region": "eu", "plan": "gold", "partner": p.ID, "trust": tr.ID}}, "parents": []any{}}}
		if d := decide(t, f.env.URL, us, readDoc("1", forged)); d.Decision != "deny" {
			t.Fatalf("region us with forged entities: %+v", d)
		}
		// It asks about itself only.
		self := readDoc("1", nil)
		self["principal"] = map[string]string{"type": "Bulkhead::Partner", "id": p.ID}
		if d := decide(t, f.env.URL, eu, self); d.Decision != "allow" {
			t.Fatalf("naming itself: %+v", d)
		}
		for name, principal := range map[string]map[string]string{
			"a user":          {"type": "User", "id": "alice"},
			"another partner": {"type": "Bulkhead::Partner", "id": q.ID},
			"its trust":       {"type": "Bulkhead::Trust", "id": tr.ID},
		} {
			r := readDoc("1", nil)
			r["principal"] = principal
			status, body := call(t, "POST", f.env.URL+"/v1/tenants/acme/authorize", eu, r)
			if status != 400 || !strings.Contains(string(body), `"principal_not_allowed"`) {
				t.Errorf("naming %s: %d %s", name, status, body)
			}
			status, body = call(t, "POST", f.env.URL+"/v1/tenants/acme/authorize/batch", eu, map[string]any{"requests": []any{readDoc("1", nil), r}})
			if status != 400 || !strings.Contains(string(body), `"principal_not_allowed"`) || !strings.Contains(string(body), `requests[1].principal`) {
				t.Errorf("naming %s in a batch: %d %s", name, status, body)
			}
		}

		secret := []map[string]any{{"uid": map[string]string{"type": "Doc", "id": "s"}, "attrs": map[string]any{"secret": true}, "parents": []any{}}}
		bound := func(policy string) {
			t.Helper()
			if _, err := f.env.Admin.UpdateTrust(f.ctx, "acme", tr.ID, api.PatchTrust{Policy: &policy}); err != nil {
				t.Fatal(err)
			}
		}
		expect := func(what string, req map[string]any, decision string, determining ...string) {
			t.Helper()
			eventually(t, what, func() (bool, string) {
				d := decide(t, f.env.URL, eu, req)
				return d.Decision == decision && (determining == nil || strings.Join(d.DeterminingPolicies, ",") == strings.Join(determining, ",")),
					fmt.Sprintf("%+v", d)
			})
		}
		// A bound of one forbid: the secret resource is denied by it (the
		// token was issued before the bound); and a bound allows nothing
		// it does not permit.
		bound(`forbid(principal, action, resource) when { resource has secret && resource.secret };`)
		expect("the secret with a forbid", readDoc("s", secret), "deny", "trust/0")
		expect("a document with a forbid only", readDoc("1", nil), "deny", "trust")
		// A bound that permits all but the secret.
		bound(`permit(principal, action, resource);
			forbid(principal, action, resource) when { resource has secret && resource.secret };`)
		expect("a document with permit and forbid", readDoc("1", nil), "allow")
		expect("the secret with permit and forbid", readDoc("s", secret), "deny", "trust/1")
		// A forbid that cannot be evaluated denies.
		bound(`permit(principal, action, resource);
			forbid(principal, action, resource) when { resource.secret };`)
		expect("a forbid that errs", readDoc("1", nil), "deny", "trust/1")
		// A bound that permits another action only.
		bound(`permit(principal, action == Action::"list", resource);`)
		expect("read outside the bound", readDoc("1", nil), "deny", "trust")
		list := readDoc("1", nil)
		list["action"] = map[string]string{"type": "Action", "id": "list"}
		expect("list, which the tenant does not permit", list, "deny")
		// No bound: the tenant's policies alone.
		bound("")
		expect("no bound", readDoc("s", secret), "allow")
	})
}

// TestTrustNetworks: a trust's networks decide where it is assumed
// from, and where its tokens are used from, changed at once for tokens
// already issued; a forwarded-for header from an untrusted peer changes
// nothing.
func TestTrustNetworks(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{})
		f.tenant(t, "acme", "basic")
		p := f.partner(t, "Reporting Co")
		tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"kms:decrypt"}, SourceNetworks: []string{"10.0.0.0/8"}})
		_, genericBody := assume(t, f.env.URL, p, "acme", "bhx_"+strings.Repeat("A", 43), nil)
		for _, xff := range []string{"", "10.1.2.3"} {
			status, _, b := exchange(t, f.env.URL, "POST", p.ID, p.ClientSecret, partnerForm("acme", tr.ExternalID, nil),
				"X-Forwarded-For", xff, "X-Real-IP", xff, "Forwarded", "for="+xff)
			if status != 400 || !bytes.Equal(b, genericBody) {
				t.Fatalf("assuming from loopback (forwarded for %q): %d %s, want %s", xff, status, b, genericBody)
			}
		}
		networks := func(nets ...string) {
			t.Helper()
			if nets == nil {
				nets = []string{}
			}
			if _, err := f.env.Admin.UpdateTrust(f.ctx, "acme", tr.ID, api.PatchTrust{SourceNetworks: &nets}); err != nil {
				t.Fatal(err)
			}
		}
		networks("127.0.0.1/32")
		tok := token(t, f.env.URL, p, "acme", tr.ExternalID, nil)
		ct := encryptAs(t, f, "acme", "acme's report")
		decrypt := map[string]any{"ciphertext": ct, "encryption_context": map[string]string{"tenant_id": "acme"}}
		if status, body := call(t, "POST", f.env.URL+"/v1/kms/decrypt", tok, decrypt); status != 200 {
			t.Fatalf("decrypt from 127.0.0.1/32: %d %s", status, body)
		}
		decide(t, f.env.URL, tok, readDoc("1", nil))

		networks("10.0.0.0/8")
		refused := func(what, method, path string, body any, header ...string) {
			t.Helper()
			eventually(t, what, func() (bool, string) {
				b, _ := json.Marshal(body)
				status, h, got := send(t, method, f.env.URL+path, tok, "application/json", string(b), header...)
				if status != 403 || !strings.Contains(string(got), `"source_network_not_allowed"`) {
					return false, fmt.Sprintf("%d %s", status, got)
				}
				problem(t, what, h, got)
				return true, ""
			})
		}
		refused("decrypt outside the networks", "POST", "/v1/kms/decrypt", decrypt)
		refused("authorize outside the networks", "POST", "/v1/tenants/acme/authorize", readDoc("1", nil))
		refused("decrypt forwarded for 10.1.2.3", "POST", "/v1/kms/decrypt", decrypt, "X-Forwarded-For", "10.1.2.3", "X-Real-IP", "10.1.2.3")
		// A bare address is its own /32; no network at all is any.
		networks("127.0.0.1")
		if status, body := call(t, "POST", f.env.URL+"/v1/kms/decrypt", tok, decrypt); status != 200 {
			t.Fatalf("decrypt from 127.0.0.1: %d %s", status, body)
		}
		networks("10.0.0.0/8")
		refused("decrypt outside the networks again", "POST", "/v1/kms/decrypt", decrypt)
		networks()
		if status, body := call(t, "POST", f.env.URL+"/v1/kms/decrypt", tok, decrypt); status != 200 {
			t.Fatalf("decrypt with no networks: %d %s", status, body)
		}
	})
}
