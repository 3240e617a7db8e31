package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
)

// OpenID Connect Back-Channel Logout 1.0: when a browser session ends,
// each application it signed in to that registered a
// backchannel_logout_uri gets a logout token — a JWT of the session's
// issuer, typ logout+jwt, naming the user (sub) and the session (sid),
// with the back-channel logout event — posted to that URI from the
// server. Deliveries run at once, in parallel, each bounded by
// logoutTimeout, through the same guarded dialer as federation (no
// private addresses unless --allow-private-upstreams); each is audited
// with its outcome. A client that is down misses it: the session's
// refresh tokens are revoked regardless.

// LogoutTokenType is the logout token's typ header (§2.4).
const LogoutTokenType = "logout+jwt"

// backchannelEvent is the event member a logout token carries (§2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

const logoutTimeout = 5 * time.Second

type logoutClaims struct {
	Issuer   string         `json:"iss"`
	Subject  string         `json:"sub"`
	Audience string         `json:"aud"`
	IssuedAt int64          `json:"iat"`
	Expiry   int64          `json:"exp"`
	ID       string         `json:"jti"`
	SID      string         `json:"sid"`
	Events   map[string]any `json:"events"`
}

// logoutClient is the HTTP client of deliveries: guarded dialer, no
// redirects (§2.8: the RP answers the post itself).
func (p *Provider) logoutClient() *http.Client {
	d := netguard.Dialer(logoutTimeout, p.cfg.AllowPrivateUpstreams)
	return &http.Client{Timeout: logoutTimeout, Transport: &http.Transport{DialContext: d.DialContext, Proxy: nil, MaxIdleConns: 0},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// backChannelLogout tells clients that session s ended.
func (p *Provider) backChannelLogout(ctx context.Context, issuer signing.Issuer, s browserSession, clients []string) {
	st := &issuerStorage{p: p, issuer: issuer}
	hc := p.logoutClient()
	var wg sync.WaitGroup
	for _, id := range clients {
		c, err := st.registeredClient(ctx, id)
		if err != nil || c.BackchannelLogoutURI == "" {
			continue
		}
		wg.Go(func() {
			status, err := p.deliverLogout(context.WithoutCancel(ctx), hc, issuer, s, c.ID, c.BackchannelLogoutURI)
			outcome, detail := audit.Success, map[string]string{"client_id": c.ID, "sid": s.sid, "status": strconv.Itoa(status)}
			if err != nil {
				outcome, detail["error"] = audit.Failure, clipErr(err)
			}
			p.auditEvent(ctx, s.tid, "oauth.backchannel_logout", s.userID, outcome, detail)
		})
	}
	wg.Wait()
}

// deliverLogout posts one logout token and returns the answer's status.
func (p *Provider) deliverLogout(ctx context.Context, hc *http.Client, issuer signing.Issuer, s browserSession, clientID, uri string) (int, error) {
	now := p.clock().Now()
	token, err := p.signJWT(ctx, issuer, LogoutTokenType, logoutClaims{Issuer: p.issuerURL(issuer), Subject: s.userID, Audience: clientID,
		IssuedAt: now.Unix(), Expiry: now.Add(2 * time.Minute).Unix(), ID: ids.New("lt"), SID: s.sid,
		Events: map[string]any{backchannelEvent: map[string]any{}}})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, logoutTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return resp.StatusCode, fmt.Errorf("the client answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}
