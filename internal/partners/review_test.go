package partners_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// holdTrust holds a write lock on a trust's row (on SQLite, the writer)
// until the returned function is called: a change of the trust made
// meanwhile waits for it, as it would behind any other writer.
func holdTrust(t *testing.T, f *fixture, tid, trustID string) (release func()) {
	t.Helper()
	locked, done, finished := make(chan error, 1), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		err := f.env.DB.Update(context.Background(), storage.TenantScope(tenant.ID(tid)), func(tx *storage.Tx) error {
			if _, err := tx.Exec(context.Background(), `UPDATE partner_trusts SET updated_at = updated_at WHERE tenant_id = ? AND id = ?`,
				tx.TenantID(), trustID); err != nil {
				return err
			}
			locked <- nil
			<-done
			return nil
		})
		if err != nil {
			locked <- err
		}
	}()
	if err := <-locked; err != nil {
		t.Fatal(err)
	}
	return func() { close(done); <-finished }
}

// result is an asynchronous call's answer.
type result struct {
	status int
	body   []byte
}

// TestReviewRevocationInFlight: a partner (or whoever holds its secret
// and a tenant's old external id) that assumes the trust while the
// tenant's rotation of the external id — or its resume after a
// suspension — is being written gets a token from the old state. Once the
// change is made, that token must be dead like every other token assumed
// with the old external id. It was not: the token's iat came after the
// rotation's timestamp (taken before the write), so it passed the check
// "issued after the rotation" for its whole life.
func TestReviewRevocationInFlight(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{})
		f.tenant(t, "acme", "basic")
		p := f.partner(t, "Reporting Co")
		tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
		decide := func(tok string) (int, []byte) {
			return call(t, "POST", f.env.URL+"/v1/tenants/acme/authorize", tok, readDoc("1", nil))
		}
		// race runs change while the trust's row is held, assumes the
		// trust with ext meanwhile, then lets the change through and
		// returns the token assumed.
		race := func(what, ext string, change func() error) string {
			t.Helper()
			release := holdTrust(t, f, "acme", tr.ID)
			changed := make(chan error, 1)
			go func() { changed <- change() }()
			time.Sleep(200 * time.Millisecond) // the change has its timestamp and waits for the row
			assumed := make(chan result, 1)
			go func() {
				status, body := assume(t, f.env.URL, p, "acme", ext, nil)
				assumed <- result{status: status, body: body}
			}()
			time.Sleep(300 * time.Millisecond) // the assumption has read the trust
			release()
			if err := <-changed; err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			a := <-assumed
			if a.status != 200 {
				t.Skipf("%s: the assumption was refused (%d %s): no token from the old state", what, a.status, a.body)
			}
			var out struct {
				AccessToken string `json:"access_token"`
			}
			json.Unmarshal(a.body, &out)
			return out.AccessToken
		}

		// A rotation in flight.
		var rotated api.TrustCreated
		tok := race("rotation", tr.ExternalID, func() (err error) {
			rotated, err = f.env.Admin.RotateExternalID(f.ctx, "acme", tr.ID)
			return err
		})
		if status, body := assume(t, f.env.URL, p, "acme", tr.ExternalID, nil); status != 400 {
			t.Fatalf("the old external id after the rotation: %d %s", status, body)
		}
		eventually(t, "a token assumed with the old external id during the rotation", func() (bool, string) {
			status, body := decide(tok)
			return status == 401, string(body)
		})
		if status, body := decide(token(t, f.env.URL, p, "acme", rotated.ExternalID, nil)); status != 200 {
			t.Fatalf("a token of the new external id: %d %s", status, body)
		}

		// A suspension, then a resume in flight: the token assumed before
		// the suspension is dead for good.
		if _, err := f.env.Admin.SuspendTrust(f.ctx, "acme", tr.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.env.Admin.ResumeTrust(f.ctx, "acme", tr.ID); err != nil {
			t.Fatal(err)
		}
		before := token(t, f.env.URL, p, "acme", rotated.ExternalID, nil)
		if status, _ := decide(before); status != 200 {
			t.Fatalf("a fresh token: %d", status)
		}
		if _, err := f.env.Admin.SuspendTrust(f.ctx, "acme", tr.ID); err != nil {
			t.Fatal(err)
		}
		if status, _ := decide(before); status != 401 {
			t.Fatalf("a token of a suspended trust: %d", status)
		}
		if _, err := f.env.Admin.ResumeTrust(f.ctx, "acme", tr.ID); err != nil {
			t.Fatal(err)
		}
		if status, _ := decide(before); status != 401 {
			t.Fatalf("a token from before the suspension, after the resume: %d", status)
		}
	})
}

// TestReviewRevocationStillClock: with a clock that does not move (or
// moves back), a rotation and a resume still start a new epoch of the
// external id: the token assumed before is refused, the one assumed after
// taken.
func TestReviewRevocationStillClock(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite), apitest.Options{Clock: clock.NewFake(time.Now())})
	f.tenant(t, "acme", "basic")
	p := f.partner(t, "Reporting Co")
	tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
	decide := func(tok string) int {
		status, _ := call(t, "POST", f.env.URL+"/v1/tenants/acme/authorize", tok, readDoc("1", nil))
		return status
	}
	old := token(t, f.env.URL, p, "acme", tr.ExternalID, nil)
	rotated, err := f.env.Admin.RotateExternalID(f.ctx, "acme", tr.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !rotated.ExternalIDRotatedAt.After(tr.ExternalIDRotatedAt) {
		t.Fatalf("the rotation's epoch %v is not after the creation's %v", rotated.ExternalIDRotatedAt, tr.ExternalIDRotatedAt)
	}
	tok := token(t, f.env.URL, p, "acme", rotated.ExternalID, nil)
	if got := decide(old); got != 401 {
		t.Fatalf("the token of the old external id: %d", got)
	}
	if got := decide(tok); got != 200 {
		t.Fatalf("the token of the new external id: %d", got)
	}
	if _, err := f.env.Admin.SuspendTrust(f.ctx, "acme", tr.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Admin.ResumeTrust(f.ctx, "acme", tr.ID); err != nil {
		t.Fatal(err)
	}
	if got := decide(tok); got != 401 {
		t.Fatalf("a token from before the suspension, after the resume: %d", got)
	}
	if got := decide(token(t, f.env.URL, p, "acme", rotated.ExternalID, nil)); got != 200 {
		t.Fatalf("a token assumed after the resume: %d", got)
	}
}

// TestReviewBlankBound: a trust's policy of blanks is no bound at all (the
// tenant's policies alone decide), yet it was stored and shown as the
// trust's policy, and audited as "policy": "true", so an admin or an
// auditor reading the trust took the partner to be bounded. It is refused
// like a policy of comments only, at creation and on a patch.
func TestReviewBlankBound(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite), apitest.Options{})
	f.tenant(t, "acme", "basic")
	p := f.partner(t, "Reporting Co")
	if _, err := f.env.Admin.CreatePolicy(f.ctx, "acme", client.PolicyInput{Statement: `permit(principal is Bulkhead::Partner, action, resource);`}); err != nil {
		t.Fatal(err)
	}
	for _, blank := range []string{" ", "\n\t \r\n"} {
		_, err := f.env.Admin.CreateTrust(f.ctx, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}, Policy: blank})
		if err == nil || !strings.Contains(err.Error(), "invalid_policy") {
			t.Fatalf("a trust whose policy is %q: %v", blank, err)
		}
	}
	tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"},
		Policy: `permit(principal, action == Action::"list", resource);`})
	blank := "  \n"
	if _, err := f.env.Admin.UpdateTrust(f.ctx, "acme", tr.ID, api.PatchTrust{Policy: &blank}); err == nil || !strings.Contains(err.Error(), "invalid_policy") {
		t.Fatalf("a patch to a policy of blanks: %v", err)
	}
	tok := token(t, f.env.URL, p, "acme", tr.ExternalID, nil)
	if d := decide(t, f.env.URL, tok, readDoc("1", nil)); d.Decision != "deny" {
		t.Fatalf("read, outside the trust's bound: %+v", d)
	}
}

// TestReviewPartnerNameUnderRowSecurity: a trust read back names its
// partner on every database. Its reads joined the platform's partners
// table from the tenant's scope, which PostgreSQL's row security hides
// from a tenant (rightly): the name was empty there, and on SQLite not.
func TestReviewPartnerNameUnderRowSecurity(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{})
		f.tenant(t, "acme", "basic")
		p := f.partner(t, "Reporting Co")
		tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
		got, err := f.env.Admin.GetTrust(f.ctx, "acme", tr.ID)
		if err != nil || got.PartnerName != "Reporting Co" {
			t.Fatalf("get: %q %v", got.PartnerName, err)
		}
		page, err := f.env.Admin.ListTrusts(f.ctx, "acme", 0, "")
		if err != nil || len(page.Items) != 1 || page.Items[0].PartnerName != "Reporting Co" {
			t.Fatalf("list: %+v %v", page, err)
		}
		if got, err = f.env.Admin.SuspendTrust(f.ctx, "acme", tr.ID); err != nil || got.PartnerName != "Reporting Co" {
			t.Fatalf("suspend: %q %v", got.PartnerName, err)
		}
		if err := f.env.Admin.DeletePartner(f.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if got, err = f.env.Admin.GetTrust(f.ctx, "acme", tr.ID); err != nil || got.PartnerName != "" || got.Partner != p.ID {
			t.Fatalf("a deleted partner's trust: %+v %v", got, err)
		}
	})
}
