package bench

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// Password login. Over HTTP the provider rate-limits sign-ins per IP and
// per account, far below what the hardware does, so the benchmark measures
// in-process the call that dominates a login: Directory.Authenticate, which
// looks the user up and verifies the password's argon2id hash with the
// node's default parameters (identity.DefaultArgon2).

const (
	loginEmail    = "u1@acme.example"
	loginPassword = "a long password 123"
)

// loginUser onboards a tenant with one user who has a password and returns
// the tenant and the argon2id parameters of the stored hash (m KiB, t, p).
func loginUser(tb testing.TB, a *app.App) (tenant.ID, [3]int) {
	tb.Helper()
	ctx := context.Background()
	tid := tenant.ID(fmt.Sprintf("login-%06d", seq.Add(1)))
	if _, _, err := a.Tenants.Create(ctx, tenants.CreateRequest{ID: string(tid), Name: "Login bench"}, "", tenant.Actor{Principal: "bench"}); err != nil {
		tb.Fatalf("create tenant: %v", err)
	}
	if _, err := a.Directory.CreateUser(ctx, tid, identity.CreateUserRequest{Email: loginEmail, Password: loginPassword}, tenant.Actor{Principal: "bench"}); err != nil {
		tb.Fatalf("create user: %v", err)
	}
	// Report the parameters the stored hash really has, not the ones the
	// benchmark expects.
	var hash string
	err := a.DB.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT password_hash FROM users WHERE tenant_id = ?`, tx.TenantID()).Scan(&hash)
	})
	if err != nil {
		tb.Fatalf("read hash: %v", err)
	}
	var p [3]int
	parts := strings.Split(hash, "$") // $argon2id$v=19$m=65536,t=3,p=1$salt$key
	if len(parts) != 6 || parts[1] != "argon2id" {
		tb.Fatalf("stored hash is not argon2id: %.20q…", hash)
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p[0], &p[1], &p[2]); err != nil {
		tb.Fatalf("stored hash parameters %q: %v", parts[3], err)
	}
	return tid, p
}

// BenchmarkPasswordLogin calls Directory.Authenticate with the right
// password from GOMAXPROCS concurrent callers (2 on the bench machine; each
// argon2id call also runs p lanes in parallel). It reports logins/s, the
// mean time of one call and the stored hash's parameters.
func BenchmarkPasswordLogin(b *testing.B) {
	a := openNode(b, storagetest.DSN(b, storage.SQLite))
	tid, p := loginUser(b, a)
	ctx := context.Background()
	var busy atomic.Int64 // summed call time, ns
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			u, err := a.Directory.Authenticate(ctx, tid, loginEmail, loginPassword)
			busy.Add(int64(time.Since(t0)))
			if err != nil || u.Email != loginEmail {
				b.Errorf("authenticate: %v (user %q)", err, u.Email)
				return
			}
		}
	})
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "logins/s")
	}
	if b.N > 0 {
		b.ReportMetric(float64(busy.Load())/float64(b.N)/1e6, "ms/login")
	}
	b.ReportMetric(float64(p[0]), "argon2_m_KiB")
	b.ReportMetric(float64(p[1]), "argon2_t")
	b.ReportMetric(float64(p[2]), "argon2_p")
}

// TestPasswordLoginSmoke runs the benchmark's setup and one login (and one
// refused login) in a plain go test run.
func TestPasswordLoginSmoke(t *testing.T) {
	a := openNode(t, storagetest.DSN(t, storage.SQLite))
	tid, p := loginUser(t, a)
	d := identity.DefaultArgon2
	if p != [3]int{int(d.Memory), int(d.Time), int(d.Threads)} {
		t.Errorf("stored hash has m=%d,t=%d,p=%d; want the default %+v", p[0], p[1], p[2], d)
	}
	ctx := context.Background()
	if _, err := a.Directory.Authenticate(ctx, tid, loginEmail, loginPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Directory.Authenticate(ctx, tid, loginEmail, loginPassword+"x"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
}
