package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pquerna/otp/totp"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Operators are the people who operate the platform, kept apart from every
// tenant's users: their own tables (platform rows, which no tenant scope
// sees), their own ids (opr_…) and their own TOTP binding, so a tenant's
// user never signs in as an operator nor the other way round, even with
// the same email. Every operator has a TOTP factor from creation: the
// secret is shown once with the temporary password, and the first valid
// code at sign-in confirms it (VerifyOperatorSecondFactor).

// Operator is a person who operates the platform (not a tenant's user).
type Operator struct {
	ID                     string     `json:"id"` // "opr_" + ids.New
	Email                  string     `json:"email"`
	Name                   string     `json:"name"`
	Status                 UserStatus `json:"status"` // UserActive or UserDisabled
	PasswordChangeRequired bool       `json:"password_change_required"`
	PasswordChangedAt      time.Time  `json:"-"` // sessions from before it end
	TOTPConfirmed          bool       `json:"totp_confirmed"`
	CreatedAt              time.Time  `json:"created_at"`
}

// CreatedOperator is a new operator with their temporary password and TOTP
// enrollment, shown once: neither is stored in clear.
type CreatedOperator struct {
	Operator
	Password string         `json:"password"`
	TOTP     TOTPEnrollment `json:"totp"`
}

// maxOperatorName bounds an operator's name, in characters.
const maxOperatorName = 100

// operatorTOTPBinding binds an operator's wrapped TOTP secret to the
// operator; it cannot be mistaken for a user's (totpBinding).
func operatorTOTPBinding(id string) []byte {
	return []byte("bulkhead-totp\x00operator=" + id)
}

func operatorNotFound(id string) error {
	return errs.E(errs.NotFound, "operator_not_found", "operator %q not found", errs.Clip(id, 64))
}

func validOperatorName(name string) error {
	n := utf8.RuneCountInString(name)
	if !utf8.ValidString(name) || strings.TrimSpace(name) == "" || n > maxOperatorName ||
		strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		return errs.Field("name", "invalid_name", "name must be 1 to %d printable characters", maxOperatorName)
	}
	return nil
}

// CreateOperator adds an operator with a temporary password (they choose
// their own at first sign-in) and a TOTP factor, both returned once. The
// email is unique among operators (409 operator_exists).
func (d *Directory) CreateOperator(ctx context.Context, email, name string, actor tenant.Actor) (CreatedOperator, error) {
	email, key, err := normalizeEmail(email)
	if err != nil {
		return CreatedOperator{}, err
	}
	if err := validOperatorName(name); err != nil {
		return CreatedOperator{}, err
	}
	if d.wrapper == nil {
		return CreatedOperator{}, errors.New("identity: no key to seal TOTP secrets")
	}
	password := NewTemporaryPassword()
	hash, err := d.hasher.hash(ctx, "", password) // outside the write transaction
	if err != nil {
		return CreatedOperator{}, err
	}
	now := d.clock.Now().Truncate(time.Microsecond)
	o := Operator{ID: ids.New("opr"), Email: email, Name: name, Status: UserActive, PasswordChangeRequired: true,
		PasswordChangedAt: now.UTC(), CreatedAt: now.UTC()}
	k, err := totp.Generate(totp.GenerateOpts{Issuer: "Bulkhead", AccountName: email})
	if err != nil {
		return CreatedOperator{}, fmt.Errorf("identity: generate TOTP secret: %w", err)
	}
	wrapped, err := d.wrapper.Wrap([]byte(k.Secret()), operatorTOTPBinding(o.ID))
	if err != nil {
		return CreatedOperator{}, err
	}
	out := CreatedOperator{Operator: o, Password: password, TOTP: TOTPEnrollment{Secret: k.Secret(), OTPAuthURL: k.URL()}}
	var recovery string
	out.TOTP.RecoveryCodes, recovery = newRecoveryCodes()
	err = d.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO operators (id, email, email_key, name, status, password_hash,
			password_change_required, password_changed_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.ID, email, key, name, string(o.Status), hash, true, now.UnixMicro(), now.UnixMicro(), now.UnixMicro()); err != nil {
			if storage.IsUniqueViolation(err) {
				return &errs.Error{Kind: errs.Conflict, Code: "operator_exists", Field: "email", Detail: "an operator with this email already exists"}
			}
			return fmt.Errorf("identity: insert operator: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO operator_totp (operator_id, secret_wrapped, confirmed, recovery_hashes, last_step, created_at)
			VALUES (?, ?, ?, ?, 0, ?)`, o.ID, wrapped, false, recovery, now.UnixMicro()); err != nil {
			return fmt.Errorf("identity: store operator TOTP: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "operator.created", o.ID))
	})
	if err != nil {
		return CreatedOperator{}, err
	}
	return out, nil
}

// AuthenticateOperator checks an operator's email and password and
// returns the operator. As Authenticate for users: an unknown email, a
// wrong password and a disabled operator give the one error
// invalid_credentials, and an unknown email costs a verification too. The
// second factor is checked next, by VerifyOperatorSecondFactor.
func (d *Directory) AuthenticateOperator(ctx context.Context, email, password string) (Operator, error) {
	bad := errs.E(errs.Unauthenticated, "invalid_credentials", "the email or password is wrong")
	var o Operator
	var hash string
	err := sql.ErrNoRows
	if utf8.ValidString(email) && !strings.ContainsRune(email, 0) && len(email) <= 254 {
		err = d.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			var err error
			o, hash, err = scanOperator(tx.QueryRow(ctx, `SELECT `+operatorColumns+` FROM operators o
				LEFT JOIN operator_totp t ON t.operator_id = o.id WHERE o.email_key = ?`, strings.ToLower(email)))
			return err
		})
	}
	if errors.Is(err, sql.ErrNoRows) || (err == nil && hash == "") {
		d.dummyOnce.Do(func() { d.dummy = HashPassword("no such user", d.argon2) })
		if _, err := d.hasher.verify(ctx, "", d.dummy, password); err != nil {
			return Operator{}, err
		}
		return Operator{}, bad
	}
	if err != nil {
		return Operator{}, fmt.Errorf("identity: read operator: %w", err)
	}
	ok, err := d.hasher.verify(ctx, "", hash, password)
	if err != nil {
		return Operator{}, err
	}
	if !ok || o.Status != UserActive {
		return Operator{}, bad
	}
	return o, nil
}

// VerifyOperatorSecondFactor checks an operator's sign-in code: a current
// TOTP code not used before, or an unused recovery code (which it uses
// up). The first valid TOTP code confirms the factor enrolled at
// creation; until then only a TOTP code is accepted, so an operator shows
// that their authenticator app holds the secret. A wrong code, an unknown
// or disabled operator all give second_factor_required.
func (d *Directory) VerifyOperatorSecondFactor(ctx context.Context, id, code string) error {
	if !ids.Valid(id, "opr") {
		return errSecondFactor
	}
	return d.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var status string
		f := totpFactor{binding: operatorTOTPBinding(id)}
		err := tx.QueryRow(ctx, `SELECT o.status, t.secret_wrapped, t.confirmed, t.recovery_hashes, t.last_step
			FROM operators o JOIN operator_totp t ON t.operator_id = o.id WHERE o.id = ?`, id).
			Scan(&status, &f.wrapped, &f.confirmed, &f.recovery, &f.lastStep)
		if errors.Is(err, sql.ErrNoRows) {
			return errSecondFactor
		}
		if err != nil {
			return fmt.Errorf("identity: read operator TOTP: %w", err)
		}
		if status != string(UserActive) {
			return errSecondFactor
		}
		step, recovery, err := d.checkFactor(f, code, f.confirmed)
		if err != nil {
			return err
		}
		if step == 0 {
			_, err = tx.Exec(ctx, `UPDATE operator_totp SET recovery_hashes = ? WHERE operator_id = ?`, recovery, id)
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE operator_totp SET last_step = ?, confirmed = ? WHERE operator_id = ?`, step, true, id); err != nil {
			return fmt.Errorf("identity: remember TOTP step: %w", err)
		}
		if f.confirmed {
			return nil
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, tenant.Actor{Principal: "operator:" + id}, "operator.totp_confirmed", id))
	})
}

const operatorColumns = `o.id, o.email, o.name, o.status, o.password_hash, o.password_change_required, o.password_changed_at,
	COALESCE(t.confirmed, false), o.created_at`

func scanOperator(row interface{ Scan(...any) error }) (Operator, string, error) {
	var o Operator
	var status, hash string
	var changed, created int64
	if err := row.Scan(&o.ID, &o.Email, &o.Name, &status, &hash, &o.PasswordChangeRequired, &changed, &o.TOTPConfirmed, &created); err != nil {
		return Operator{}, "", err
	}
	o.Status = UserStatus(status)
	o.PasswordChangedAt, o.CreatedAt = time.UnixMicro(changed).UTC(), time.UnixMicro(created).UTC()
	return o, hash, nil
}

func getOperator(ctx context.Context, tx *storage.Tx, id string) (Operator, string, error) {
	if !ids.Valid(id, "opr") {
		return Operator{}, "", operatorNotFound(id)
	}
	o, hash, err := scanOperator(tx.QueryRow(ctx, `SELECT `+operatorColumns+` FROM operators o
		LEFT JOIN operator_totp t ON t.operator_id = o.id WHERE o.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Operator{}, "", operatorNotFound(id)
	}
	if err != nil {
		return Operator{}, "", fmt.Errorf("identity: get operator: %w", err)
	}
	return o, hash, nil
}

// GetOperator returns one operator.
func (d *Directory) GetOperator(ctx context.Context, id string) (Operator, error) {
	var o Operator
	err := d.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var err error
		o, _, err = getOperator(ctx, tx, id)
		return err
	})
	return o, err
}

// ListOperators returns every operator, ordered by id.
func (d *Directory) ListOperators(ctx context.Context) ([]Operator, error) {
	out := []Operator{}
	err := d.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+operatorColumns+` FROM operators o
			LEFT JOIN operator_totp t ON t.operator_id = o.id ORDER BY o.id`)
		if err != nil {
			return fmt.Errorf("identity: list operators: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			o, _, err := scanOperator(rows)
			if err != nil {
				return fmt.Errorf("identity: list operators: %w", err)
			}
			out = append(out, o)
		}
		return rows.Err()
	})
	return out, err
}

// SetOperatorPassword sets an operator's own password: it must satisfy
// DefaultPasswordPolicy and differ from the current one. It clears
// PasswordChangeRequired.
func (d *Directory) SetOperatorPassword(ctx context.Context, id, newPassword string, actor tenant.Actor) error {
	var cur Operator
	var oldHash string
	err := d.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var err error
		cur, oldHash, err = getOperator(ctx, tx, id)
		return err
	})
	if err != nil {
		return err
	}
	if err := DefaultPasswordPolicy.Check(newPassword, cur.Email); err != nil {
		return err
	}
	// Hashing and verifying happen outside the write transaction.
	same, err := d.hasher.verify(ctx, "", oldHash, newPassword)
	if err != nil {
		return err
	}
	if same {
		return errs.Field("password", "password_unchanged", "choose a password different from the current one")
	}
	hash, err := d.hasher.hash(ctx, "", newPassword)
	if err != nil {
		return err
	}
	return d.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		now := d.clock.Now().UnixMicro()
		res, err := tx.Exec(ctx, `UPDATE operators SET password_hash = ?, password_change_required = ?, password_changed_at = ?, updated_at = ?
			WHERE id = ?`, hash, false, now, now, id)
		if err != nil {
			return fmt.Errorf("identity: set operator password: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return operatorNotFound(id)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "operator.password_changed", id))
	})
}

// DisableOperator stops an operator from signing in. Admin tokens remain
// for automation, so the last active operator may be disabled too.
func (d *Directory) DisableOperator(ctx context.Context, id string, actor tenant.Actor) error {
	return d.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if _, _, err := getOperator(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE operators SET status = ?, updated_at = ? WHERE id = ?`,
			string(UserDisabled), d.clock.Now().UnixMicro(), id); err != nil {
			return fmt.Errorf("identity: disable operator: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "operator.disabled", id))
	})
}

// DeleteOperator removes an operator and their second factor.
func (d *Directory) DeleteOperator(ctx context.Context, id string, actor tenant.Actor) error {
	return d.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if _, _, err := getOperator(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM operator_totp WHERE operator_id = ?`, id); err != nil {
			return fmt.Errorf("identity: delete operator TOTP: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM operators WHERE id = ?`, id); err != nil {
			return fmt.Errorf("identity: delete operator: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "operator.deleted", id))
	})
}
