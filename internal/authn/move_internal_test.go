package authn

import (
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
)

// TestIssuedBeforeMove: the issuer a tenant left is taken only for tokens
// it issued in a whole second before the move (iat counts seconds, so a
// token of the move's own second may come after it), and no other issuer
// is taken for it.
func TestIssuedBeforeMove(t *testing.T) {
	moved := time.Date(2026, 12, 7, 12, 0, 5, 400_000_000, time.UTC)
	tn := tenants.Tenant{ID: "acme", Isolation: tenants.Silo, PriorIsolation: tenants.Pool, IsolationChangedAt: moved}
	const prior = "https://id.example"
	for _, c := range []struct {
		name   string
		issuer string
		iat    time.Time
		prior  string
		want   bool
	}{
		{"a second before", prior, moved.Truncate(time.Second).Add(-time.Second), prior, true},
		{"long before", prior, moved.Add(-10 * time.Minute), prior, true},
		{"the move's own second", prior, moved.Truncate(time.Second), prior, false},
		{"after the move", prior, moved.Add(time.Minute), prior, false},
		{"no iat", prior, time.Time{}, prior, false},
		{"another issuer", "https://evil.example", moved.Add(-time.Hour), prior, false},
		{"the tenant never moved", prior, moved.Add(-time.Hour), "", false},
	} {
		if got := issuedBeforeMove(&auth.Claims{Issuer: c.issuer, IssuedAt: c.iat}, tn, c.prior); got != c.want {
			t.Errorf("%s: %v; want %v", c.name, got, c.want)
		}
	}
}
