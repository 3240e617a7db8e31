package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(api.IdentityConfig{PasswordMinLength: 12, AccessTokenLifetime: api.Duration(15 * time.Minute)})
	if err != nil || string(b) != `{"password_min_length":12,"access_token_lifetime":"15m0s","refresh_token_lifetime":"0s"}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var p api.IdentityConfigPatch
	if err := json.Unmarshal([]byte(`{"refresh_token_lifetime":"720h"}`), &p); err != nil ||
		p.RefreshTokenLifetime == nil || *p.RefreshTokenLifetime != api.Duration(720*time.Hour) || p.AccessTokenLifetime != nil {
		t.Fatalf("unmarshal: %+v %v", p, err)
	}
	for _, bad := range []string{`{"refresh_token_lifetime":720}`, `{"refresh_token_lifetime":"a week"}`, `{"refresh_token_lifetime":"1h`} {
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestProblemError(t *testing.T) {
	p := &api.Problem{Status: 404, Code: "tenant_not_found", Detail: `tenant "acme" not found`}
	if got := p.Error(); got != `404 tenant_not_found: tenant "acme" not found` {
		t.Errorf("Error() = %q", got)
	}
	if got := (&api.Problem{Status: 401, Code: "invalid_token"}).Error(); got != "401 invalid_token" {
		t.Errorf("Error() = %q", got)
	}
}

func TestPolicySchemaText(t *testing.T) {
	cedar := api.PolicySchema{Format: "cedar", Schema: json.RawMessage(`"entity User;"`)}
	if got := cedar.Text(); got != "entity User;" {
		t.Errorf("cedar schema text %q", got)
	}
	js := api.PolicySchema{Format: "json", Schema: json.RawMessage(`{"":{"entityTypes":{}}}`)}
	if got := js.Text(); got != `{"":{"entityTypes":{}}}` {
		t.Errorf("json schema text %q", got)
	}
}
