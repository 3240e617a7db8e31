package identity_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// withRootKey returns a directory over e's database that seals TOTP
// secrets with a new root key, and that key.
func (e *env) withRootKey(t *testing.T) (*identity.Directory, *kms.RootKey) {
	t.Helper()
	rk, _, err := kms.LoadRootKey(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rk.Zero)
	return identity.NewDirectory(e.db, e.log, identity.Options{Clock: e.clock, Argon2: fastArgon, Wrapper: rk}), rk
}

// code is the TOTP code of secret at the fake clock's time, plus steps.
func (e *env) code(t *testing.T, secret string, steps int) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, e.clock.Now().Add(time.Duration(steps)*30*time.Second),
		totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantKind(t *testing.T, what string, err error, kind errs.Kind, code string) {
	t.Helper()
	e, ok := errs.As(err)
	if !ok || e.Kind != kind || e.Code != code {
		t.Errorf("%s: %v; want %v %s", what, err, kind, code)
	}
}

// TestOperatorLifecycle: create, sign in with password and TOTP (the first
// code confirms the factor), replay, recovery codes, password change,
// disable, delete, and the audit trail of it all.
func TestOperatorLifecycle(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		d, _ := e.withRootKey(t)
		ctx := context.Background()

		c, err := d.CreateOperator(ctx, "Ops@Example.com", "Olga Operator", op)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(c.ID, "opr_") || c.Email != "Ops@Example.com" || c.Name != "Olga Operator" ||
			c.Status != identity.UserActive || !c.PasswordChangeRequired || c.TOTPConfirmed {
			t.Fatalf("created operator %+v", c.Operator)
		}
		if len(c.Password) < 20 || c.TOTP.Secret == "" || len(c.TOTP.RecoveryCodes) != 10 ||
			!strings.HasPrefix(c.TOTP.OTPAuthURL, "otpauth://totp/Bulkhead:") || !strings.Contains(c.TOTP.OTPAuthURL, "issuer=Bulkhead") {
			t.Fatalf("created operator's secrets: password %d chars, totp %+v", len(c.Password), c.TOTP)
		}
		_, err = d.CreateOperator(ctx, "ops@example.COM", "Other", op)
		wantKind(t, "same email, other case", err, errs.Conflict, "operator_exists")

		// Password: right (any case of the email), wrong, unknown.
		o, err := d.AuthenticateOperator(ctx, "ops@example.com", c.Password)
		if err != nil || o.ID != c.ID || !o.PasswordChangeRequired {
			t.Fatalf("authenticate: %+v %v", o, err)
		}
		_, err = d.AuthenticateOperator(ctx, "ops@example.com", c.Password+"x")
		wantKind(t, "wrong password", err, errs.Unauthenticated, "invalid_credentials")
		_, err = d.AuthenticateOperator(ctx, "nobody@example.com", c.Password)
		wantKind(t, "unknown email", err, errs.Unauthenticated, "invalid_credentials")

		// TOTP: before confirmation a recovery code is refused; the first
		// valid code confirms; a replay is refused; the next step works.
		if err := d.VerifyOperatorSecondFactor(ctx, c.ID, c.TOTP.RecoveryCodes[0]); err == nil {
			t.Error("a recovery code was accepted before the factor was confirmed")
		}
		wantKind(t, "wrong code", d.VerifyOperatorSecondFactor(ctx, c.ID, "000000"), errs.Unauthenticated, "second_factor_required")
		code := e.code(t, c.TOTP.Secret, 0)
		if err := d.VerifyOperatorSecondFactor(ctx, c.ID, code); err != nil {
			t.Fatalf("first code: %v", err)
		}
		if got, _ := d.GetOperator(ctx, c.ID); !got.TOTPConfirmed {
			t.Error("the first valid code did not confirm the factor")
		}
		wantKind(t, "replayed code", d.VerifyOperatorSecondFactor(ctx, c.ID, code), errs.Unauthenticated, "second_factor_required")
		wantKind(t, "code of the previous step", d.VerifyOperatorSecondFactor(ctx, c.ID, e.code(t, c.TOTP.Secret, -1)),
			errs.Unauthenticated, "second_factor_required")
		e.clock.Advance(30 * time.Second)
		if err := d.VerifyOperatorSecondFactor(ctx, c.ID, e.code(t, c.TOTP.Secret, 0)); err != nil {
			t.Errorf("code of the next step: %v", err)
		}
		// Recovery codes: once each, in any case and with spaces around.
		if err := d.VerifyOperatorSecondFactor(ctx, c.ID, " "+strings.ToUpper(c.TOTP.RecoveryCodes[3])+" "); err != nil {
			t.Errorf("recovery code: %v", err)
		}
		wantKind(t, "recovery code again", d.VerifyOperatorSecondFactor(ctx, c.ID, c.TOTP.RecoveryCodes[3]),
			errs.Unauthenticated, "second_factor_required")
		for _, bad := range []string{"", "12345", "1234567", strings.Repeat("9", 4096), "abc\x00de", "\xff\xfe\xfd\xfc\xfb\xfa"} {
			wantKind(t, "bad code "+errs.Clip(bad, 10), d.VerifyOperatorSecondFactor(ctx, c.ID, bad), errs.Unauthenticated, "second_factor_required")
		}
		wantKind(t, "unknown operator's code", d.VerifyOperatorSecondFactor(ctx, "opr_nobody", code), errs.Unauthenticated, "second_factor_required")

		// Password change: weak and unchanged refused; then the new one works.
		wantErr(t, "weak password", d.SetOperatorPassword(ctx, c.ID, "short", op), "weak_password", "password")
		wantErr(t, "email as password", d.SetOperatorPassword(ctx, c.ID, "ops@example.com", op), "weak_password", "password")
		err = d.SetOperatorPassword(ctx, c.ID, c.Password, op)
		wantErr(t, "same password", err, "password_unchanged", "password")
		e.clock.Advance(time.Minute)
		if err := d.SetOperatorPassword(ctx, c.ID, goodPassword, op); err != nil {
			t.Fatal(err)
		}
		o, err = d.AuthenticateOperator(ctx, "ops@example.com", goodPassword)
		if err != nil || o.PasswordChangeRequired || !o.PasswordChangedAt.Equal(e.clock.Now().Truncate(time.Microsecond)) {
			t.Errorf("after the change: %+v %v", o, err)
		}
		if _, err := d.AuthenticateOperator(ctx, "ops@example.com", c.Password); err == nil {
			t.Error("the temporary password still works")
		}
		wantKind(t, "password of unknown operator", d.SetOperatorPassword(ctx, "opr_nobody", goodPassword2, op), errs.NotFound, "operator_not_found")

		// List, disable, delete.
		c2, err := d.CreateOperator(ctx, "second@example.com", "Second", op)
		if err != nil {
			t.Fatal(err)
		}
		list, err := d.ListOperators(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("list: %+v %v", list, err)
		}
		if err := d.DisableOperator(ctx, c.ID, op); err != nil {
			t.Fatal(err)
		}
		if got, _ := d.GetOperator(ctx, c.ID); got.Status != identity.UserDisabled {
			t.Errorf("disabled operator's status %q", got.Status)
		}
		_, err = d.AuthenticateOperator(ctx, "ops@example.com", goodPassword)
		wantKind(t, "disabled operator", err, errs.Unauthenticated, "invalid_credentials")
		e.clock.Advance(time.Minute)
		wantKind(t, "disabled operator's code", d.VerifyOperatorSecondFactor(ctx, c.ID, e.code(t, c.TOTP.Secret, 0)),
			errs.Unauthenticated, "second_factor_required")
		if err := d.DeleteOperator(ctx, c.ID, op); err != nil {
			t.Fatal(err)
		}
		_, err = d.GetOperator(ctx, c.ID)
		wantKind(t, "deleted operator", err, errs.NotFound, "operator_not_found")
		wantKind(t, "delete again", d.DeleteOperator(ctx, c.ID, op), errs.NotFound, "operator_not_found")
		wantKind(t, "disable unknown", d.DisableOperator(ctx, "nope", op), errs.NotFound, "operator_not_found")
		if list, _ := d.ListOperators(ctx); len(list) != 1 || list[0].ID != c2.ID {
			t.Errorf("after delete: %+v", list)
		}
		// The last operator may go: admin tokens remain.
		if err := d.DeleteOperator(ctx, c2.ID, op); err != nil {
			t.Errorf("delete the last operator: %v", err)
		}

		// Audit: platform events naming the operator, nothing secret.
		p, err := e.log.ListAllTenants(ctx, audit.Filter{Tenant: audit.PlatformChain, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		actions := map[string]int{}
		for _, ev := range p.Items {
			if ev.TenantID != "" {
				t.Errorf("operator event in tenant %q: %+v", ev.TenantID, ev)
			}
			for _, secret := range append([]string{c.Password, c.TOTP.Secret, goodPassword}, c.TOTP.RecoveryCodes...) {
				if strings.Contains(ev.Target+ev.Principal+strings.Join(mapValues(ev.Detail), " "), secret) {
					t.Errorf("audit event %s holds a secret", ev.Action)
				}
			}
			if ev.Target == c.ID {
				actions[ev.Action]++
			}
		}
		for _, a := range []string{"operator.created", "operator.totp_confirmed", "operator.password_changed", "operator.disabled", "operator.deleted"} {
			if actions[a] != 1 {
				t.Errorf("audit: %d %s events for the operator; want 1 (%v)", actions[a], a, actions)
			}
		}
	})
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestOperatorHostileInput: malformed emails and names are refused with a
// clear error, and tenant users and operators are separate directories:
// the same email and password never sign in across them, and an
// operator's wrapped TOTP secret does not unwrap under a user's binding.
func TestOperatorHostileInput(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA)
		d, rk := e.withRootKey(t)
		ctx := context.Background()

		for _, bad := range []string{"", "ann", "ann@example.com\x00", "a\x00nn@example.com", strings.Repeat("a", 250) + "@example.com",
			"\xff@example.com", "Ann <ann@example.com>", " ann@example.com"} {
			_, err := d.CreateOperator(ctx, bad, "Ann", op)
			wantErr(t, "email "+errs.Clip(bad, 20), err, "invalid_email", "email")
			_, err = d.AuthenticateOperator(ctx, bad, "whatever")
			wantKind(t, "authenticate "+errs.Clip(bad, 20), err, errs.Unauthenticated, "invalid_credentials")
		}
		for _, bad := range []string{"", "   ", strings.Repeat("n", 101), "Ann\x00", "Ann\nBob", "\xffAnn", "Ann\u200b"} {
			_, err := d.CreateOperator(ctx, "ann@example.com", bad, op)
			wantErr(t, "name "+errs.Clip(bad, 20), err, "invalid_name", "name")
		}
		if _, err := d.CreateOperator(ctx, "ann@example.com", strings.Repeat("é", 100), op); err != nil {
			t.Errorf("a name of 100 characters: %v", err)
		}
		if _, err := d.GetOperator(ctx, "usr_"+strings.Repeat("a", 26)); err == nil {
			t.Error("got an operator by a user-shaped id")
		}

		// A tenant user and an operator with the same email and password.
		const email = "same@example.com"
		u := e.createUser(t, tenantA, identity.CreateUserRequest{Email: email, Password: goodPassword})
		c, err := d.CreateOperator(ctx, email, "Same", op)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.AuthenticateOperator(ctx, email, goodPassword); err == nil {
			t.Error("a tenant user's password signed in as an operator")
		}
		if _, err := d.Authenticate(ctx, tenantA, email, c.Password); err == nil {
			t.Error("an operator's password signed in as a tenant user")
		}
		if err := d.SetOperatorPassword(ctx, c.ID, goodPassword, op); err != nil {
			t.Fatal(err)
		}
		if _, err := d.AuthenticateOperator(ctx, email, goodPassword); err != nil {
			t.Errorf("operator after the change: %v", err)
		}
		if got, err := d.Authenticate(ctx, tenantA, email, goodPassword); err != nil || got.ID != u.ID {
			t.Errorf("the user still signs in as themselves: %+v %v", got, err)
		}
		// A user's id is no operator's, and the tenant scope sees no operator.
		wantKind(t, "user id as operator", d.VerifyOperatorSecondFactor(ctx, u.ID, e.code(t, c.TOTP.Secret, 0)),
			errs.Unauthenticated, "second_factor_required")
		err = e.db.View(ctx, storage.TenantScope(tenantA), func(tx *storage.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM operators`).Scan(&n); err != nil {
				return err
			}
			if n != 0 && e.db.Dialect() == storage.Postgres {
				t.Errorf("a tenant scope sees %d operators", n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// The wrapped secret opens only under the operator's own binding.
		var wrapped []byte
		err = e.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			return tx.QueryRow(ctx, `SELECT secret_wrapped FROM operator_totp WHERE operator_id = ?`, c.ID).Scan(&wrapped)
		})
		if err != nil {
			t.Fatal(err)
		}
		if secret, err := rk.Unwrap(wrapped, identity.OperatorTOTPBinding(c.ID)); err != nil || string(secret) != c.TOTP.Secret {
			t.Fatalf("unwrap under the operator's binding: %v", err)
		}
		for _, b := range [][]byte{identity.TOTPBinding("", c.ID), identity.TOTPBinding(string(tenantA), c.ID),
			identity.TOTPBinding(string(tenantA), u.ID), identity.OperatorTOTPBinding(u.ID)} {
			if _, err := rk.Unwrap(wrapped, b); err == nil {
				t.Errorf("the operator's secret unwrapped under %q", b)
			}
		}
	})
}
