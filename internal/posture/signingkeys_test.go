package posture_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// TestSigningKeyOverdue: a silo tenant's issuer key older than the
// rotation period and a day is found in the tenant's findings; the
// platform issuer's, past the period but within the day, is not, nor the
// key of an issuer whose tenant is not in silo isolation (left behind by
// a move out of silo); a rotation resolves the finding.
func TestSigningKeyOverdue(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme")
		if _, _, err := f.env.Tenants.Create(f.ctx, tenants.CreateRequest{ID: "bigco", Tier: "premium"}, "", op); err != nil {
			t.Fatal(err)
		}
		key := func(tid tenant.ID) string {
			t.Helper()
			k, err := f.env.Signing.Rotate(f.ctx, signing.Issuer{Tenant: tid})
			if err != nil {
				t.Fatal(err)
			}
			return k.ID
		}
		bigco, platform, pool := key("bigco"), key(""), key("acme")
		f.exec(t, `UPDATE signing_keys SET created_at = ? WHERE kid = ?`, ago(32*days), bigco)
		f.exec(t, `UPDATE signing_keys SET created_at = ? WHERE kid = ?`, ago(30*days+12*time.Hour), platform)
		f.exec(t, `UPDATE signing_keys SET created_at = ? WHERE kid = ?`, ago(90*days), pool)

		f.scan(t)
		got := f.want(t, "signing_key_overdue", "signing_key:"+bigco, api.SeverityMedium, "bigco")
		if !strings.Contains(got.Detail, "bigco") {
			t.Errorf("detail: %q", got.Detail)
		}
		f.none(t, "signing_key_overdue", "signing_key:"+platform)
		f.none(t, "signing_key_overdue", "signing_key:"+pool)

		// The platform issuer's, a day late too: the platform's finding.
		f.exec(t, `UPDATE signing_keys SET created_at = ? WHERE kid = ?`, ago(32*days), platform)
		f.scan(t)
		f.want(t, "signing_key_overdue", "signing_key:"+platform, api.SeverityMedium, "")

		key("bigco")
		f.scan(t)
		f.none(t, "signing_key_overdue", "signing_key:"+bigco)
	})
}
