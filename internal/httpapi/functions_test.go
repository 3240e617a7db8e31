package httpapi_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// publishBody is a multipart body with a config part and a module part.
func publishBody(t *testing.T, config string, module []byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if config != "" {
		mw.WriteField("config", config)
	}
	if module != nil {
		fw, _ := mw.CreateFormFile("module", "fn.wasm")
		fw.Write(module)
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// TestFunctionsOverHTTP: the operator publishes the counter example in
// per_tenant mode; tenants invoke it with their tokens and each sees only
// its own state; the tenant comes from the token, or from X-Tenant-Id for
// the operator; a missing tenant, another tenant in the header, a
// suspended tenant and a deleted function are refused clearly.
func TestFunctionsOverHTTP(t *testing.T) {
	module := apitest.CounterModule(t)
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		a := newTwoTenantEnv(t, dsn, map[string]tenant.Context{
			"tok-a": {TenantID: "tenant-a", Principal: "client:a"},
			"tok-b": {TenantID: "tenant-b", Principal: "client:b"},
		})
		body, ct := publishBody(t, `{"name":"counter","tenancy_mode":"per_tenant","timeout":"5s"}`, module)
		r := send(t, a.env.URL, call{method: "POST", path: "/v1/functions", token: apitest.AdminToken, body: body, ctype: ct})
		var info struct {
			Name        string `json:"name"`
			Version     int    `json:"version"`
			TenancyMode string `json:"tenancy_mode"`
		}
		wantJSON(t, "publish", r, http.StatusCreated, &info)
		if info.Name != "counter" || info.Version != 1 || info.TenancyMode != "per_tenant" {
			t.Errorf("published: %+v", info)
		}
		type answer struct {
			Count    int      `json:"count"`
			TenantID string   `json:"tenant_id"`
			TmpSeen  []string `json:"tmp_seen"`
		}
		invoke := func(tok, header string) (answer, response) {
			t.Helper()
			c := call{method: "POST", path: "/v1/functions/counter/invoke", token: tok, body: []byte(`{}`)}
			if header != "" {
				c.header = http.Header{"X-Tenant-Id": {header}}
			}
			r := send(t, a.env.URL, c)
			var ans answer
			if r.Status == 200 {
				json.Unmarshal(r.Body, &ans)
			}
			return ans, r
		}
		for i, c := range []struct {
			tok, header, tenant string
			count               int
			seen                int
		}{
			{"tok-a", "", "tenant-a", 1, 0},
			{"tok-a", "", "tenant-a", 2, 1},
			{"tok-b", "", "tenant-b", 1, 0},
			{apitest.AdminToken, "tenant-a", "tenant-a", 3, 1},
		} {
			ans, r := invoke(c.tok, c.header)
			if r.Status != 200 || ans.TenantID != c.tenant || ans.Count != c.count || len(ans.TmpSeen) != c.seen {
				t.Errorf("invocation %d: %d %s", i, r.Status, r.Body)
			}
			for _, s := range ans.TmpSeen {
				if s != c.tenant {
					t.Errorf("invocation %d as %s saw %s's file", i, c.tenant, s)
				}
			}
		}
		// Prometheus counts cold and warm starts per tier.
		m := send(t, a.env.URL, call{method: "GET", path: "/metrics"})
		for _, want := range []string{
			`bulkhead_function_invocations_total{function="counter",start="cold",tier="basic"} 2`,
			`bulkhead_function_invocations_total{function="counter",start="warm",tier="basic"} 2`,
		} {
			if !bytes.Contains(m.Body, []byte(want)) {
				t.Errorf("metrics lack %s", want)
			}
		}
		_, r = invoke(apitest.AdminToken, "")
		if p := wantProblem(t, "no tenant", r, 400, "tenant_id_required", ""); p.Detail != "function counter uses per-tenant isolation; add a tenant id and try again" {
			t.Errorf("detail %q", p.Detail)
		}
		_, r = invoke("tok-a", "tenant-b")
		wantProblem(t, "tenant-a's token naming tenant-b", r, 404, "tenant_not_found", "")
		_, r = invoke(apitest.AdminToken, "tenant-zz")
		wantProblem(t, "unknown tenant", r, 404, "tenant_not_found", "")
		a.ok("POST", "/v1/tenants/tenant-b/suspend", apitest.AdminToken, nil, 200, nil)
		_, r = invoke(apitest.AdminToken, "tenant-b")
		wantProblem(t, "suspended tenant", r, 409, "tenant_not_active", "")

		// Environments are per tenant.
		var envs struct {
			Items []struct {
				TenantID string `json:"tenant_id"`
			} `json:"items"`
		}
		a.ok("GET", "/v1/functions/counter/environments", apitest.AdminToken, nil, 200, &envs)
		if len(envs.Items) != 2 {
			t.Errorf("environments: %+v", envs.Items)
		}
		// Bad uploads.
		for _, c := range []struct {
			name, config string
			module       []byte
			code         string
		}{
			{"not wasm", `{"name":"junk","tenancy_mode":"shared"}`, []byte("MZ\x90\x00 not wasm"), "invalid_module"},
			{"empty module", `{"name":"junk","tenancy_mode":"shared"}`, []byte{}, "invalid_module_size"},
			{"bad name", `{"name":"Bad Name","tenancy_mode":"shared"}`, module, "invalid_name"},
			{"mode change", `{"name":"counter","tenancy_mode":"shared"}`, module, "tenancy_mode_immutable"},
			{"unknown config field", `{"name":"x","tenancy_mode":"shared","cpu":4}`, module, "invalid_config"},
			{"no config", "", module, "missing_config"},
		} {
			body, ct := publishBody(t, c.config, c.module)
			r := send(t, a.env.URL, call{method: "POST", path: "/v1/functions", token: apitest.AdminToken, body: body, ctype: ct})
			p := decodeProblem(t, c.name, r)
			if p.Code != c.code || r.Status >= 500 {
				t.Errorf("%s: %d %s, want %s", c.name, r.Status, p.Code, c.code)
			}
		}
		// A deleted function is gone.
		if r := send(t, a.env.URL, call{method: "DELETE", path: "/v1/functions/counter", token: apitest.AdminToken}); r.Status != 204 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		_, r = invoke("tok-a", "")
		wantProblem(t, "invoking a deleted function", r, 404, "function_not_found", "")
	})
}
