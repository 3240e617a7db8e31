package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestOperatorsAPI: an operator credential creates, lists, gets, disables
// and deletes operators; the secrets appear once, in the create's answer;
// tenant credentials, even a tenant admin's, get nothing.
func TestOperatorsAPI(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{TenantTokens: adminTokens(), Argon2: identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}})
		createTenant(t, env, client.CreateTenant{ID: "tenant-a"})
		ctx := context.Background()

		r := send(t, env.URL, call{method: "POST", path: "/v1/operators", token: apitest.AdminToken,
			body: mustJSON(t, map[string]string{"email": "Olga@Example.com", "name": "Olga"})})
		var created client.CreatedOperator
		wantJSON(t, "create", r, http.StatusCreated, &created)
		if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Location") != "/v1/operators/"+created.ID {
			t.Errorf("create headers: %v", r.Header)
		}
		if !strings.HasPrefix(created.ID, "opr_") || created.Email != "Olga@Example.com" || created.Name != "Olga" || created.Status != "active" ||
			!created.PasswordChangeRequired || created.TOTPConfirmed || created.Password == "" || created.TOTP.Secret == "" ||
			!strings.HasPrefix(created.TOTP.OTPAuthURL, "otpauth://totp/") || len(created.TOTP.RecoveryCodes) != 10 {
			t.Fatalf("created: %s", r.Body)
		}

		// The directory signs the operator in with what the answer showed.
		o, err := env.Directory.AuthenticateOperator(ctx, "olga@example.com", created.Password)
		if err != nil || o.ID != created.ID {
			t.Fatalf("authenticate: %v", err)
		}
		code, _ := totp.GenerateCodeCustom(created.TOTP.Secret, time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err := env.Directory.VerifyOperatorSecondFactor(ctx, created.ID, code); err != nil {
			t.Fatalf("second factor: %v", err)
		}

		// Reads show no secret.
		got, err := env.Admin.GetOperator(ctx, created.ID)
		if err != nil || got.ID != created.ID || !got.TOTPConfirmed || got.Email != created.Email {
			t.Errorf("get: %+v %v", got, err)
		}
		for _, c := range []call{{method: "GET", path: "/v1/operators"}, {method: "GET", path: "/v1/operators/" + created.ID}} {
			c.token = apitest.AdminToken
			r := send(t, env.URL, c)
			for _, secret := range append([]string{created.Password, created.TOTP.Secret, "argon2", "password\""}, created.TOTP.RecoveryCodes...) {
				noSecret(t, c.String(), r, secret)
			}
		}

		// Conflict, bad input, unknown fields.
		r = send(t, env.URL, call{method: "POST", path: "/v1/operators", token: apitest.AdminToken,
			body: mustJSON(t, map[string]string{"email": "olga@example.com", "name": "Again"})})
		wantProblem(t, "same email", r, http.StatusConflict, "operator_exists", "email")
		r = send(t, env.URL, call{method: "POST", path: "/v1/operators", token: apitest.AdminToken,
			body: mustJSON(t, map[string]string{"email": "x\u0000@example.com", "name": "X"})})
		wantProblem(t, "NUL in email", r, http.StatusBadRequest, "invalid_email", "email")
		r = send(t, env.URL, call{method: "POST", path: "/v1/operators", token: apitest.AdminToken,
			body: mustJSON(t, map[string]string{"email": "y@example.com", "name": strings.Repeat("n", 101)})})
		wantProblem(t, "long name", r, http.StatusBadRequest, "invalid_name", "name")
		r = send(t, env.URL, call{method: "POST", path: "/v1/operators", token: apitest.AdminToken,
			body: []byte(`{"email":"z@example.com","name":"Z","password":"chosen by the caller"}`)})
		if r.Status != http.StatusBadRequest {
			t.Errorf("unknown field: %d %s", r.Status, r.Body)
		}
		r = send(t, env.URL, call{method: "GET", path: "/v1/operators/opr_nobody", token: apitest.AdminToken})
		wantProblem(t, "unknown operator", r, http.StatusNotFound, "operator_not_found", "")

		// Tenant credentials, an admin's included, are refused every route.
		for _, c := range []call{
			{method: "POST", path: "/v1/operators", body: mustJSON(t, map[string]string{"email": "evil@example.com", "name": "Evil"})},
			{method: "GET", path: "/v1/operators"},
			{method: "GET", path: "/v1/operators/" + created.ID},
			{method: "POST", path: "/v1/operators/" + created.ID + "/disable"},
			{method: "DELETE", path: "/v1/operators/" + created.ID},
		} {
			for _, tok := range []string{tokAdmA, tokUsrA, ""} {
				c.token = tok
				if r := send(t, env.URL, c); r.Status != http.StatusForbidden && r.Status != http.StatusUnauthorized {
					t.Errorf("%s with %q: %d %s", c, tok, r.Status, r.Body)
				}
			}
		}

		// Disable, then delete.
		d, err := env.Admin.DisableOperator(ctx, created.ID)
		if err != nil || d.Status != "disabled" {
			t.Errorf("disable: %+v %v", d, err)
		}
		if _, err := env.Directory.AuthenticateOperator(ctx, "olga@example.com", created.Password); err == nil {
			t.Error("a disabled operator signed in")
		}
		if err := env.Admin.DeleteOperator(ctx, created.ID); err != nil {
			t.Fatal(err)
		}
		if list, err := env.Admin.ListOperators(ctx); err != nil || len(list) != 0 {
			t.Errorf("list after delete: %+v %v", list, err)
		}
		r = send(t, env.URL, call{method: "DELETE", path: "/v1/operators/" + created.ID, token: apitest.AdminToken})
		wantProblem(t, "delete again", r, http.StatusNotFound, "operator_not_found", "")

		// The audit trail names the acts, on the platform chain.
		for _, action := range []string{"operator.created", "operator.totp_confirmed", "operator.disabled", "operator.deleted"} {
			if evs := auditEvents(t, env, client.AuditQuery{Action: action}); len(evs) != 1 || evs[0].Target != created.ID || evs[0].TenantID != "" {
				t.Errorf("audit %s: %+v", action, evs)
			}
		}
	})
}
