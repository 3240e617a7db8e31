package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/sdk/auth"
)

// FuzzValidate: no input panics Validate; every refusal is an *auth.Error
// that does not quote the input; whatever is accepted carries a valid claim
// set of the platform issuer.
func FuzzValidate(f *testing.F) {
	e := newEnv(f)
	valid := e.platform(e.es, "acme")
	parts := strings.Split(valid, ".")
	f.Add(valid)
	f.Add(e.platform(e.ed, ""))
	f.Add(valid[:len(valid)/2])                                                       // truncated
	f.Add(parts[0] + "." + parts[1])                                                  // no signature
	f.Add(craft(map[string]any{"alg": "none"}, e.claims(e.op.Issuer(), "acme"), nil)) // alg none
	f.Add(craft(map[string]any{"alg": "none", "kid": e.es.ID}, e.claims(e.op.Issuer(), "acme"), []byte{0}))
	f.Add(craft(map[string]any{"alg": "ES256", "kid": e.es.ID, "crit": []string{"b64"}, "b64": false}, map[string]any{}, make([]byte, 64)))
	f.Add(craft(map[string]any{"alg": "EdDSA", "kid": e.ed.ID}, []any{1, "x"}, make([]byte, 64)))
	f.Add(craft(map[string]any{"alg": "ES256", "kid": e.es.ID}, map[string]any{"aud": 1, "exp": "x", "iss": e.op.SiloIssuer("acme")}, make([]byte, 64)))
	f.Add("garbage")
	f.Add("...")
	f.Add("a.b.c")
	f.Add("")
	f.Add(strings.Repeat("A", auth.MaxTokenSize+1))
	f.Fuzz(func(t *testing.T, token string) {
		c, err := e.validate(token)
		if err != nil {
			var ae *auth.Error
			if !errors.As(err, &ae) {
				t.Fatalf("refusal is not an *auth.Error: %v", err)
			}
			if len(token) >= 24 && strings.Contains(err.Error(), token) {
				t.Fatalf("error quotes the token: %v", err)
			}
			return
		}
		if c.Issuer != e.op.Issuer() || c.Subject == "" || c.Expiry.IsZero() {
			t.Fatalf("accepted a token with claims %+v", c)
		}
	})
}
