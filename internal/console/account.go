package console

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// accountView is the signed-in person's own account: who they are, the
// enrolment of an authenticator app (TOTP), and where they are signed in.
// Every tenant user reaches it, admins or not: it is the self-service
// page a SaaS application links its users to ({public URL}/console/account,
// or /console/signin?org={tenant}&return=/console/account for a silo
// tenant's users).
type accountView struct {
	Me         *api.User
	Enrollment *api.TOTPEnrollment
	QR         template.HTML // the otpauth URL as an SVG QR code
	Sessions   []api.Session
	Current    string // the sid of the session this console sign-in belongs to
}

func (c *Console) account(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	v := accountView{}
	if !s.Operator() {
		me, err := cl.GetMe(r.Context())
		if err != nil {
			return "", view{}, err
		}
		v.Me = &me
		if v.Sessions, err = cl.MySessions(r.Context()); err != nil {
			return "", view{}, err
		}
		v.Current = sidOf(s.idToken)
	}
	return "account", view{Title: "Your account", Nav: "account", Data: v, Notice: noticeOf(r)}, nil
}

// accountSessionEnd ends one of the person's own browser sessions (a
// browser they left signed in): their applications are told by
// back-channel logout.
func (c *Console) accountSessionEnd(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	if s.Operator() {
		return "", view{}, &api.Problem{Status: http.StatusNotFound}
	}
	if err := cl.EndMySession(r.Context(), r.PathValue("session")); err != nil {
		return "", view{}, err
	}
	return c.seeOther(w, r, "/account?notice=session_ended")
}

// accountTOTP starts the enrolment of the person's authenticator app: a
// sensitive act (a session's thief could lock the owner out), so it needs
// a recent sign-in.
func (c *Console) accountTOTP(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	if s.Operator() {
		return "", view{}, &api.Problem{Status: http.StatusNotFound}
	}
	e, err := cl.EnrollMyTOTP(r.Context())
	var p *api.Problem
	if errors.As(err, &p) && p.Code == "totp_already_enabled" {
		name, v, err := c.account(w, r, s, cl)
		v.Notice = "Your account already has an authenticator app. To replace it, ask an admin of your organization to reset it."
		return name, v, err
	}
	if err != nil {
		return "", view{}, err
	}
	qr, err := qrSVG(e.OTPAuthURL)
	if err != nil {
		return "", view{}, err
	}
	name, v, err := c.account(w, r, s, cl)
	if err == nil {
		av := v.Data.(accountView)
		av.Enrollment, av.QR = &e, qr
		v.Data = av
	}
	return name, v, err
}

func (c *Console) accountTOTPConfirm(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
	if s.Operator() {
		return "", view{}, &api.Problem{Status: http.StatusNotFound}
	}
	err := cl.ConfirmMyTOTP(r.Context(), strings.TrimSpace(r.PostForm.Get("code")))
	// A wrong code is the API's 401 second_factor_required: the form's
	// fault, not the session's.
	var p *api.Problem
	if refusal(err) != nil || (errors.As(err, &p) && p.Code == "second_factor_required") {
		return c.again(w, r, s, cl, c.account, http.StatusBadRequest, "That code did not match. Set the app up again and enter the code it shows now.")
	}
	if err != nil {
		return "", view{}, err
	}
	return c.seeOther(w, r, "/account?notice=totp")
}

// sidOf reads the sid claim of the session's own ID token (verified
// when the session began, kept sealed since): which of the person's
// sessions is this browser's.
func sidOf(idToken string) string {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		SID string `json:"sid"`
	}
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return ""
	}
	return c.SID
}

// qrSVG draws text as a QR code in SVG, one rect per dark module: drawn
// on the server, so the page needs no script and no image source beyond
// itself.
func qrSVG(text string) (template.HTML, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("console: QR code: %w", err)
	}
	bits := q.Bitmap()
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="qr" viewBox="0 0 %d %d" role="img" aria-label="QR code of the authenticator app's setup"><rect width="%d" height="%d" class="qr-bg"/>`,
		len(bits), len(bits), len(bits), len(bits))
	for y, row := range bits {
		for x, dark := range row {
			if dark {
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="1" height="1"/>`, x, y)
			}
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()), nil // only numbers from the bitmap
}
