package identity

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// TOTP second factor (RFC 6238: SHA-1, 6 digits, 30-second steps, one step
// of skew). The shared secret is stored only wrapped by the root key, bound
// to the tenant and user; a code is accepted once (its step is remembered);
// ten single-use recovery codes are stored as hashes.

// Wrapper seals secrets at rest: the key hierarchy's root (kms.Sealer).
type Wrapper = kms.Sealer

// TOTPEnrollment is what an enrollment shows once: the secret for the
// authenticator app and the recovery codes.
type TOTPEnrollment = api.TOTPEnrollment

func totpBinding(tid, userID string) []byte {
	return []byte("bulkhead-totp\x00tenant=" + tid + "\x00user=" + userID)
}

// EnrollTOTP starts (or restarts) a user's TOTP enrollment. The factor is
// enforced at sign-in once ConfirmTOTP has seen a first valid code.
func (d *Directory) EnrollTOTP(ctx context.Context, tid tenant.ID, userID string, actor tenant.Actor) (TOTPEnrollment, error) {
	if d.wrapper == nil {
		return TOTPEnrollment{}, errors.New("identity: no key to seal TOTP secrets")
	}
	var out TOTPEnrollment
	err := d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		u, err := getUser(ctx, tx, userID)
		if err != nil {
			return err
		}
		key, err := totp.Generate(totp.GenerateOpts{Issuer: "Bulkhead " + tx.TenantID(), AccountName: u.Email})
		if err != nil {
			return fmt.Errorf("identity: generate TOTP secret: %w", err)
		}
		wrapped, err := d.wrapper.Wrap([]byte(key.Secret()), totpBinding(tx.TenantID(), u.ID))
		if err != nil {
			return err
		}
		out = TOTPEnrollment{Secret: key.Secret(), OTPAuthURL: key.URL()}
		var rh string
		out.RecoveryCodes, rh = newRecoveryCodes()
		if _, err := tx.Exec(ctx, `INSERT INTO user_totp (user_id, tenant_id, secret_wrapped, confirmed, recovery_hashes, last_step, created_at)
			VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT (user_id) DO UPDATE SET secret_wrapped = excluded.secret_wrapped,
			confirmed = excluded.confirmed, recovery_hashes = excluded.recovery_hashes, last_step = 0, created_at = excluded.created_at`,
			u.ID, tx.TenantID(), wrapped, false, rh, d.clock.Now().UnixMicro()); err != nil {
			return fmt.Errorf("identity: store TOTP: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "user.totp_enrolled", u.ID))
	})
	return out, err
}

// ConfirmTOTP turns on an enrolled factor once the user shows a valid code.
func (d *Directory) ConfirmTOTP(ctx context.Context, tid tenant.ID, userID, code string, actor tenant.Actor) error {
	return d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		if err := d.checkTOTP(ctx, tx, userID, code, false); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE user_totp SET confirmed = ? WHERE tenant_id = ? AND user_id = ?`, true, tx.TenantID(), userID); err != nil {
			return fmt.Errorf("identity: confirm TOTP: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "user.totp_confirmed", userID))
	})
}

// RemoveTOTP turns a user's second factor off.
func (d *Directory) RemoveTOTP(ctx context.Context, tid tenant.ID, userID string, actor tenant.Actor) error {
	return d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		if _, err := getUser(ctx, tx, userID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM user_totp WHERE tenant_id = ? AND user_id = ?`, tx.TenantID(), userID); err != nil {
			return fmt.Errorf("identity: remove TOTP: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "user.totp_removed", userID))
	})
}

// errSecondFactor is the one answer to a missing or wrong second factor.
var errSecondFactor = errs.E(errs.Unauthenticated, "second_factor_required", "enter the code from your authenticator app, or a recovery code")

// TOTPRequired reports whether the user signs in with a confirmed TOTP factor.
func (d *Directory) TOTPRequired(ctx context.Context, tid tenant.ID, userID string) (bool, error) {
	var confirmed bool
	err := d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT confirmed FROM user_totp WHERE tenant_id = ? AND user_id = ?`, tx.TenantID(), userID).Scan(&confirmed)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return confirmed, err
}

// VerifySecondFactor checks a sign-in's code: a current TOTP code not used
// before, or an unused recovery code (which it uses up).
func (d *Directory) VerifySecondFactor(ctx context.Context, tid tenant.ID, userID, code string) error {
	return d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		return d.checkTOTP(ctx, tx, userID, code, true)
	})
}

func (d *Directory) checkTOTP(ctx context.Context, tx *storage.Tx, userID, code string, mustBeConfirmed bool) error {
	if !ids.Valid(userID, "usr") {
		return userNotFound(userID)
	}
	f := totpFactor{binding: totpBinding(tx.TenantID(), userID)}
	err := tx.QueryRow(ctx, `SELECT secret_wrapped, confirmed, recovery_hashes, last_step FROM user_totp WHERE tenant_id = ? AND user_id = ?`,
		tx.TenantID(), userID).Scan(&f.wrapped, &f.confirmed, &f.recovery, &f.lastStep)
	if errors.Is(err, sql.ErrNoRows) {
		return errs.E(errs.NotFound, "totp_not_enrolled", "the user has no TOTP factor")
	}
	if err != nil {
		return fmt.Errorf("identity: read TOTP: %w", err)
	}
	if mustBeConfirmed && !f.confirmed {
		return errSecondFactor
	}
	// Enrollment is confirmed with a TOTP code only.
	step, recovery, err := d.checkFactor(f, code, mustBeConfirmed)
	if err != nil {
		return err
	}
	if step != 0 {
		_, err = tx.Exec(ctx, `UPDATE user_totp SET last_step = ? WHERE tenant_id = ? AND user_id = ?`, step, tx.TenantID(), userID)
	} else {
		_, err = tx.Exec(ctx, `UPDATE user_totp SET recovery_hashes = ? WHERE tenant_id = ? AND user_id = ?`, recovery, tx.TenantID(), userID)
	}
	return err
}

// totpFactor is a stored TOTP factor, a user's or an operator's.
type totpFactor struct {
	wrapped   []byte // the secret, wrapped by d.wrapper under binding
	binding   []byte
	confirmed bool
	recovery  string // JSON array of the unused recovery codes' hashes
	lastStep  int64  // the step of the last code accepted
}

// checkFactor is the one check of a second-factor code against a stored
// factor, for users and operators alike: a 6-digit code of the current
// step or one step either side, newer than the last step accepted
// (replays are refused), or, if allowRecovery, an unused recovery code.
// Comparisons are constant-time. It changes nothing: on success it
// returns either the step to remember (step != 0) or the recovery hashes
// without the code used up, for the caller to store in its transaction.
// Any wrong code gives errSecondFactor.
func (d *Directory) checkFactor(f totpFactor, code string, allowRecovery bool) (step int64, recovery string, err error) {
	code = strings.ToLower(strings.TrimSpace(code))
	if len(code) == 6 {
		if d.wrapper == nil {
			return 0, "", errors.New("identity: no key to unseal TOTP secrets")
		}
		secret, err := d.wrapper.Unwrap(f.wrapped, f.binding)
		if err != nil {
			return 0, "", fmt.Errorf("identity: TOTP secret: %w", err)
		}
		defer clear(secret)
		now := d.clock.Now()
		for _, skew := range []int64{0, -1, 1} {
			step := now.Unix()/30 + skew
			want, err := totp.GenerateCodeCustom(string(secret), time.Unix(step*30, 0), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
			if err != nil {
				return 0, "", fmt.Errorf("identity: TOTP code: %w", err)
			}
			if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
				if step <= f.lastStep {
					return 0, "", errSecondFactor // replayed
				}
				return step, "", nil
			}
		}
		return 0, "", errSecondFactor
	}
	if !allowRecovery {
		return 0, "", errSecondFactor
	}
	var hashes []string
	if err := json.Unmarshal([]byte(f.recovery), &hashes); err != nil {
		return 0, "", fmt.Errorf("identity: recovery codes unreadable: %w", err)
	}
	h := hashSecret(code)
	for i, stored := range hashes {
		if subtle.ConstantTimeCompare([]byte(h), []byte(stored)) == 1 {
			hashes = append(hashes[:i], hashes[i+1:]...)
			raw, _ := json.Marshal(hashes)
			return 0, string(raw), nil
		}
	}
	return 0, "", errSecondFactor
}

// newRecoveryCodes returns ten recovery codes, to be shown once, and
// their hashes as stored (a JSON array).
func newRecoveryCodes() (codes []string, hashes string) {
	hs := make([]string, 10)
	for i := range hs {
		code := strings.ToLower(ids.New("rc")[3:19])
		codes = append(codes, code)
		hs[i] = hashSecret(code)
	}
	raw, _ := json.Marshal(hs)
	return codes, string(raw)
}
