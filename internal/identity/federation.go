package identity

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// Who a federated sign-in is. A tenant's provider says who signed in with
// its issuer and a subject, which it keeps unique and stable; an email is
// only an attribute, which many providers let users set themselves. So a
// sign-in is linked to a user by (issuer, subject), and an email never
// attaches an upstream identity to an account on its own:
//
//   - a known (issuer, subject) is its linked user, whatever email it has now;
//   - an unknown one whose email no account has becomes a new user, linked;
//   - an unknown one whose email an account has is linked to that account
//     only when the provider asserts email_verified as the JSON boolean true
//     and the tenant turned LinkExistingByEmail on, and only if the account
//     has no other subject of that issuer; otherwise it is refused.

// FederatedLogin is what a tenant's provider said about a sign-in, taken
// from its verified ID token (and, for the email, possibly userinfo).
type FederatedLogin struct {
	Issuer  string // the verified ID token's issuer
	Subject string // its subject
	// Email is the address the provider gave ("" for none), and
	// EmailVerified whether it asserted email_verified: true (a JSON
	// boolean: a string or an absent claim is not an assertion).
	Email         string
	EmailVerified bool
	// Profile holds the provider's name claims (name, given_name,
	// family_name), kept as upstream_* attributes of a new user.
	Profile map[string]string
	// MFA is whether the provider's ID token says the user gave more than
	// one factor (RFC 8176 amr: "mfa", or two kinds of factor).
	MFA bool
}

// FederatedOutcome says how a federated sign-in found its user.
type FederatedOutcome string

// The outcomes.
const (
	FederatedLinked        FederatedOutcome = "linked"          // the upstream identity was linked already
	FederatedCreated       FederatedOutcome = "created"         // a new user, linked
	FederatedLinkedByEmail FederatedOutcome = "linked_by_email" // linked now to the existing account with its verified email
)

// The refusals of FederatedUser, by stable code.
var (
	errFederatedNoEmail = errs.E(errs.Forbidden, "federated_email_missing",
		"the organization's provider gave no email for this new user")
	errFederatedEmailTaken = errs.E(errs.Forbidden, "federated_email_taken",
		"an account with this email exists; the tenant links accounts by email only when it allows it and the provider verified the email")
	errFederatedAccountLinked = errs.E(errs.Forbidden, "federated_account_linked",
		"the account with this email is linked to another identity at the organization's provider")
	errFederatedIssuer = errs.E(errs.Forbidden, "federated_issuer_changed",
		"the sign-in came from a provider that is not the tenant's provider now")
)

// FederatedUser returns the user of tenant tid that a sign-in at the
// tenant's provider identifies (see the rules above), creating and linking
// it on the first sign-in of someone new. Links and new users are audited
// in the tenant's chain in the same transaction; refusals are errors with
// stable codes, for the caller to audit. The caller checks the user's
// status and second factor.
func (d *Directory) FederatedUser(ctx context.Context, tid tenant.ID, in FederatedLogin) (User, FederatedOutcome, error) {
	if in.Issuer == "" || in.Subject == "" || len(in.Issuer) > 500 || len(in.Subject) > 255 ||
		!utf8.ValidString(in.Subject) || strings.ContainsRune(in.Subject, 0) {
		return User{}, "", errs.E(errs.Forbidden, "federated_subject_invalid", "the provider's subject must be 1 to 255 characters")
	}
	var u User
	var outcome FederatedOutcome
	var err error
	// Two first sign-ins of one identity at once: the loser of the race
	// hits a unique key and, on the second try, finds the winner's link.
	for range 2 {
		err = d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
			u, outcome, err = d.federatedUserTx(ctx, tx, in)
			return err
		})
		if err == nil || !storage.IsUniqueViolation(err) {
			break
		}
	}
	return u, outcome, err
}

func (d *Directory) federatedUserTx(ctx context.Context, tx *storage.Tx, in FederatedLogin) (User, FederatedOutcome, error) {
	if err := tenants.RequireActiveTx(ctx, tx); err != nil {
		return User{}, "", err
	}
	var issuer string
	var linkByEmail bool
	err := tx.QueryRow(ctx, `SELECT issuer, link_existing_by_email FROM tenant_idps WHERE tenant_id = ?`, tx.TenantID()).
		Scan(&issuer, &linkByEmail)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && issuer != in.Issuer) {
		return User{}, "", errFederatedIssuer // disconnected or replaced while the user was away
	}
	if err != nil {
		return User{}, "", fmt.Errorf("identity: read idp: %w", err)
	}
	var userID string
	err = tx.QueryRow(ctx, `SELECT user_id FROM federated_identities WHERE tenant_id = ? AND issuer = ? AND subject = ?`,
		tx.TenantID(), in.Issuer, in.Subject).Scan(&userID)
	if err == nil {
		u, err := getUser(ctx, tx, userID)
		return u, FederatedLinked, err
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return User{}, "", fmt.Errorf("identity: read federated identity: %w", err)
	}
	if in.Email == "" {
		return User{}, "", errFederatedNoEmail
	}
	email, key, err := normalizeEmail(in.Email)
	if err != nil {
		return User{}, "", err
	}
	now := d.clock.Now().UnixMicro()
	link := func(userID string, outcome FederatedOutcome) (User, FederatedOutcome, error) {
		if _, err := tx.Exec(ctx, `INSERT INTO federated_identities (tenant_id, issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?, ?)`,
			tx.TenantID(), in.Issuer, in.Subject, userID, now); err != nil {
			return User{}, "", fmt.Errorf("identity: link federated identity: %w", err)
		}
		ev := audit.Event{TenantID: tx.TenantID(), Principal: "federation", Action: "user.federation_linked", Target: userID,
			Detail: map[string]string{"issuer": in.Issuer, "upstream_subject": errs.Clip(in.Subject, 64), "how": string(outcome)}}
		if err := d.audit.AppendTx(ctx, tx, ev); err != nil {
			return User{}, "", err
		}
		u, err := getUser(ctx, tx, userID)
		return u, outcome, err
	}
	err = tx.QueryRow(ctx, `SELECT id FROM users WHERE tenant_id = ? AND email_key = ?`, tx.TenantID(), key).Scan(&userID)
	switch {
	case err == nil:
		if !linkByEmail || !in.EmailVerified {
			return User{}, "", errFederatedEmailTaken
		}
		var other int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM federated_identities WHERE tenant_id = ? AND user_id = ? AND issuer = ?`,
			tx.TenantID(), userID, in.Issuer).Scan(&other); err != nil {
			return User{}, "", fmt.Errorf("identity: read federated identities: %w", err)
		}
		if other > 0 {
			return User{}, "", errFederatedAccountLinked
		}
		return link(userID, FederatedLinkedByEmail)
	case !errors.Is(err, sql.ErrNoRows):
		return User{}, "", fmt.Errorf("identity: find user by email: %w", err)
	}
	attrs := map[string]string{}
	for _, k := range []string{"name", "given_name", "family_name"} {
		if v := in.Profile[k]; v != "" && utf8.ValidString(v) && len(v) <= 200 {
			attrs["upstream_"+k] = v
		}
	}
	raw, _ := json.Marshal(attrs)
	userID = ids.New("usr")
	if _, err := tx.Exec(ctx, `INSERT INTO users (id, tenant_id, email, email_key, status, attributes, password_hash,
		password_change_required, password_changed_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, '', ?, 0, ?, ?)`,
		userID, tx.TenantID(), email, key, string(UserActive), string(raw), false, now, now); err != nil {
		return User{}, "", fmt.Errorf("identity: provision federated user: %w", err)
	}
	ev := audit.Event{TenantID: tx.TenantID(), Principal: "federation", Action: "user.created", Target: userID,
		Detail: map[string]string{"issuer": in.Issuer}}
	if err := d.audit.AppendTx(ctx, tx, ev); err != nil {
		return User{}, "", err
	}
	return link(userID, FederatedCreated)
}

// FederationRefusal reports the stable code of a FederatedUser refusal
// ("" when err is not one), for the audit of a refused sign-in.
func FederationRefusal(err error) string {
	if e, ok := errs.As(err); ok && strings.HasPrefix(e.Code, "federated_") {
		return e.Code
	}
	return ""
}
