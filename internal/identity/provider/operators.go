package provider

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Operators sign in at the platform issuer's login page, for the console's
// client only (with OperatorScope), against the operator directory: email,
// password and, always, a TOTP code or a recovery code. Their tokens name
// the account (opr_…) and no tenant.

// operatorRequest reports whether a is an operator's sign-in.
func operatorRequest(issuer signing.Issuer, a *authRequest) bool {
	return issuer.Tenant == "" && a.ClientID == ConsoleClientID && slices.Contains(a.Scopes, OperatorScope)
}

// isOperator reports whether a token's subject is an operator account.
func isOperator(tid tenant.ID, userID string) bool { return tid == "" && ids.Valid(userID, "opr") }

// activeOperator returns an operator account that may still hold tokens.
func (s *issuerStorage) activeOperator(ctx context.Context, id string) (identity.Operator, error) {
	if s.issuer.Tenant != "" {
		return identity.Operator{}, errNotFound
	}
	o, err := s.p.cfg.Directory.GetOperator(ctx, id)
	if err != nil || o.Status != identity.UserActive {
		return identity.Operator{}, errNotFound
	}
	return o, nil
}

// wrongOperator is the one answer to a wrong operator email or password.
const wrongOperator = "The email or password is wrong."

// operatorLogin finishes an operator's sign-in from the login form. A
// password someone else set is replaced first, before the code is asked,
// so that no code is spent on a form that comes back.
func (p *Provider) operatorLogin(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider, a *authRequest,
	view *loginView, render func(int, string)) {
	ctx := r.Context()
	email := strings.TrimSpace(r.PostForm.Get("email"))
	password := r.PostForm.Get("password")
	view.Email = email
	ip := p.cfg.ClientIP.IP(r)
	now := p.clock().Now()
	if ok, _ := p.loginByIP.Allow(clientip.LimitKey(ip), now); !ok {
		render(http.StatusTooManyRequests, "Too many attempts. Wait a minute and try again.")
		return
	}
	failKey := "operator\x00" + strings.ToLower(email) + "\x00" + clientip.LimitKey(ip)
	if !p.loginFailures.Ready(failKey, now) {
		render(http.StatusTooManyRequests, "Too many failed attempts for this account from your address. Wait a minute and try again.")
		return
	}
	detail := map[string]string{"client_id": a.ClientID, "source_ip": ip, "account": "operator"}
	failed := func(target, reason, msg string) {
		p.loginFailures.Allow(failKey, now)
		if reason != "" {
			detail["reason"] = reason
		}
		p.auditEvent(ctx, "", "login.failure", target, audit.Denied, detail)
		render(http.StatusUnauthorized, msg)
	}
	acct, err := p.cfg.Directory.AuthenticateOperator(ctx, email, password)
	if err != nil {
		if e, ok := errs.As(err); ok && e.Kind == errs.Unavailable {
			render(http.StatusServiceUnavailable, "Sign-in is busy. Try again in a moment.")
			return
		}
		failed("", "", wrongOperator)
		return
	}
	newPassword := r.PostForm.Get("new_password")
	if acct.PasswordChangeRequired {
		view.ChangePassword = true
		if newPassword == "" {
			render(http.StatusOK, "Your password was set for you. Enter it again, choose your own, and enter the code from your authenticator app.")
			return
		}
		if newPassword == password {
			render(http.StatusBadRequest, "Choose a password different from the one you were given.")
			return
		}
		if err := identity.DefaultPasswordPolicy.Check(newPassword, acct.Email); err != nil {
			msg := "The new password was not accepted."
			if e, ok := errs.As(err); ok {
				msg = "The new password is too weak: " + e.Detail + "."
			}
			render(http.StatusBadRequest, msg)
			return
		}
	}
	if err := p.cfg.Directory.VerifyOperatorSecondFactor(ctx, acct.ID, r.PostForm.Get("code")); err != nil {
		failed(acct.ID, "second factor", "Enter the current code from your authenticator app, or a recovery code.")
		return
	}
	if acct.PasswordChangeRequired {
		self := tenant.Actor{Principal: "operator:" + acct.ID, SourceIP: ip}
		if err := p.cfg.Directory.SetOperatorPassword(ctx, acct.ID, newPassword, self); err != nil {
			render(http.StatusBadRequest, "The new password was not accepted.")
			return
		}
		now = p.clock().Now() // the sign-in completes after the change
	}
	err = p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE oidc_auth_requests SET user_id = ?, tenant_id = '', auth_time = ?
			WHERE id = ? AND issuer_tenant = '' AND user_id = ''`, acct.ID, now.UnixMicro(), a.ID)
		return err
	})
	if err != nil {
		render(http.StatusInternalServerError, "Sign-in failed. Please try again.")
		return
	}
	delete(detail, "reason")
	detail["second_factor"] = "totp"
	p.auditEvent(ctx, "", "login.success", acct.ID, audit.Success, detail)
	p.redirectToCallback(w, r, issuer, o, a.ID)
}
