package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// OAuth grant types a client may be registered for.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	// GrantTokenExchange is OAuth 2.0 Token Exchange (RFC 8693): a
	// confidential client exchanges a user's access token for a short-lived
	// token that acts for that user (see internal/sts).
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// Client is an OAuth client registered with Bulkhead's OpenID provider,
// either under a tenant (its tokens carry that tenant: a tenant's own
// backend service or app) or platform-wide (TenantID "": tokens carry no
// tenant).
type Client struct {
	ID           string    `json:"client_id"`
	TenantID     tenant.ID `json:"tenant_id,omitempty"`
	Name         string    `json:"name"`
	GrantTypes   []string  `json:"grant_types"`
	RedirectURIs []string  `json:"redirect_uris"`
	Scopes       []string  `json:"scopes"`
	Public       bool      `json:"public"` // no secret; PKCE with S256 required
	// BackchannelLogoutURI, if set, is told when a browser session that
	// signed in to the client ends (OpenID Connect Back-Channel Logout 1.0).
	BackchannelLogoutURI string    `json:"backchannel_logout_uri,omitempty"`
	CreatedAt            time.Time `json:"created_at"`
}

// CreateClientRequest is the body of a client registration.
type CreateClientRequest struct {
	Name         string   `json:"name"`
	GrantTypes   []string `json:"grant_types"`
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	Public       bool     `json:"public,omitempty"`
	// BackchannelLogoutURI: https (http on loopback only), no fragment.
	BackchannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`
}

// CreatedClient is a new client and its secret, shown once (confidential clients only).
type CreatedClient struct {
	Client
	ClientSecret string `json:"client_secret,omitempty"`
}

// OperatorScope asks the platform issuer to sign in an operator; only the
// built-in console client has it (provider.OperatorScope is this one), so
// no registered client may.
const OperatorScope = "bulkhead:operator"

var scopePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9:._/-]{0,99}$`)

func (req CreateClientRequest) validate() (Client, error) {
	c := Client{Name: req.Name, Public: req.Public}
	if strings.TrimSpace(req.Name) == "" || len(req.Name) > 200 || strings.ContainsFunc(req.Name, isControl) {
		return c, errs.Field("name", "invalid_name", "name must be 1 to 200 characters of text")
	}
	if len(req.GrantTypes) == 0 {
		return c, errs.Field("grant_types", "invalid_grant_types", "name at least one of authorization_code, refresh_token, client_credentials, "+GrantTokenExchange)
	}
	for i, g := range req.GrantTypes {
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantTokenExchange:
		default:
			return c, errs.Field(fmt.Sprintf("grant_types[%d]", i), "invalid_grant_types",
				"grant type must be authorization_code, refresh_token, client_credentials or "+GrantTokenExchange)
		}
		if !slices.Contains(c.GrantTypes, g) {
			c.GrantTypes = append(c.GrantTypes, g)
		}
	}
	if req.Public && slices.Contains(c.GrantTypes, GrantClientCredentials) {
		return c, errs.Field("grant_types", "invalid_grant_types", "a public client has no secret, so it cannot use client_credentials")
	}
	if req.Public && slices.Contains(c.GrantTypes, GrantTokenExchange) {
		return c, errs.Field("grant_types", "invalid_grant_types", "a public client has no secret, so it cannot use token exchange")
	}
	if slices.Contains(c.GrantTypes, GrantRefreshToken) && !slices.Contains(c.GrantTypes, GrantAuthorizationCode) {
		return c, errs.Field("grant_types", "invalid_grant_types", "refresh_token needs authorization_code")
	}
	if slices.Contains(c.GrantTypes, GrantAuthorizationCode) && len(req.RedirectURIs) == 0 {
		return c, errs.Field("redirect_uris", "invalid_redirect_uri", "authorization_code needs at least one redirect URI")
	}
	if len(req.RedirectURIs) > 20 {
		return c, errs.Field("redirect_uris", "invalid_redirect_uri", "at most 20 redirect URIs")
	}
	c.RedirectURIs = []string{}
	for i, raw := range req.RedirectURIs {
		if err := validRedirectURI(raw); err != nil {
			return c, errs.Field(fmt.Sprintf("redirect_uris[%d]", i), "invalid_redirect_uri", "%s", err.Error())
		}
		if !slices.Contains(c.RedirectURIs, raw) {
			c.RedirectURIs = append(c.RedirectURIs, raw)
		}
	}
	if req.BackchannelLogoutURI != "" {
		if err := validRedirectURI(req.BackchannelLogoutURI); err != nil {
			return c, errs.Field("backchannel_logout_uri", "invalid_backchannel_logout_uri", "%s",
				strings.ReplaceAll(err.Error(), "redirect URI", "back-channel logout URI"))
		}
		c.BackchannelLogoutURI = req.BackchannelLogoutURI
	}
	if len(req.Scopes) > 50 {
		return c, errs.Field("scopes", "invalid_scope", "at most 50 scopes")
	}
	c.Scopes = []string{}
	for i, s := range req.Scopes {
		if !scopePattern.MatchString(s) {
			return c, errs.Field(fmt.Sprintf("scopes[%d]", i), "invalid_scope", "a scope is 1 to 100 characters of a-z, 0-9 and :._/-")
		}
		if s == OperatorScope {
			// Hostile review: the operator scope was registrable, and client
			// credentials then issued tokens carrying it. It is the built-in
			// console's alone (provider.ConsoleClient), never a client's.
			return c, errs.Field(fmt.Sprintf("scopes[%d]", i), "invalid_scope", "the scope %s is reserved for Bulkhead's console", OperatorScope)
		}
		if !slices.Contains(c.Scopes, s) {
			c.Scopes = append(c.Scopes, s)
		}
	}
	return c, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// validRedirectURI accepts absolute https URLs, and http only for loopback
// hosts (native apps, RFC 8252), without fragments. Matching at the
// authorization endpoint is exact, so the stored form is the one to send.
func validRedirectURI(raw string) error {
	if len(raw) > 2000 {
		return errors.New("a redirect URI is at most 2000 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return errors.New("a redirect URI must be an absolute URL")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("a redirect URI must not have a fragment")
	}
	if u.User != nil {
		return errors.New("a redirect URI must not carry user information")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if h := u.Hostname(); h != "localhost" && h != "127.0.0.1" && h != "::1" {
			return errors.New("http redirect URIs are allowed only for loopback hosts; use https")
		}
	default:
		return errors.New("a redirect URI must use https (or http on a loopback host)")
	}
	return nil
}

func clientScope(tid tenant.ID) storage.Scope {
	if tid == "" {
		return storage.PlatformScope()
	}
	return storage.TenantScope(tid)
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateClient registers a client under tenant tid, or platform-wide when
// tid is "". A confidential client's secret is returned once and stored only
// as a SHA-256 hash (it is 256 random bits, so a fast hash suffices).
func (d *Directory) CreateClient(ctx context.Context, tid tenant.ID, req CreateClientRequest, actor tenant.Actor) (CreatedClient, error) {
	c, err := req.validate()
	if err != nil {
		return CreatedClient{}, err
	}
	out := CreatedClient{Client: c}
	secretHash := ""
	if !c.Public {
		out.ClientSecret = ids.Secret("bhs")
		secretHash = hashSecret(out.ClientSecret)
	}
	gt, _ := json.Marshal(c.GrantTypes)
	ru, _ := json.Marshal(c.RedirectURIs)
	sc, _ := json.Marshal(c.Scopes)
	err = d.db.Update(ctx, clientScope(tid), func(tx *storage.Tx) error {
		if tid != "" {
			if err := tenants.RequireActiveTx(ctx, tx); err != nil {
				return err
			}
			if err := tx.WithinQuota(ctx, "oauth_clients", MaxClientsPerTenant, "OAuth clients"); err != nil {
				return err
			}
		}
		now := d.clock.Now().Truncate(time.Microsecond)
		out.ID, out.TenantID, out.CreatedAt = ids.New("cli"), tenant.ID(tx.TenantID()), now
		if _, err := tx.Exec(ctx, `INSERT INTO oauth_clients (id, tenant_id, name, grant_types, redirect_uris, scopes, public, secret_hash, created_at,
			backchannel_logout_uri) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, out.ID, tx.TenantID(), c.Name, string(gt), string(ru), string(sc), c.Public,
			secretHash, now.UnixMicro(), c.BackchannelLogoutURI); err != nil {
			return fmt.Errorf("identity: insert client: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "client.created", out.ID))
	})
	if err != nil {
		return CreatedClient{}, err
	}
	return out, nil
}

const clientColumns = `id, tenant_id, name, grant_types, redirect_uris, scopes, public, created_at, backchannel_logout_uri`

func scanClient(row interface{ Scan(...any) error }) (Client, error) {
	var c Client
	var tid, gt, ru, sc string
	var created int64
	if err := row.Scan(&c.ID, &tid, &c.Name, &gt, &ru, &sc, &c.Public, &created, &c.BackchannelLogoutURI); err != nil {
		return Client{}, err
	}
	c.TenantID, c.CreatedAt = tenant.ID(tid), time.UnixMicro(created).UTC()
	for _, f := range []struct {
		raw string
		dst *[]string
	}{{gt, &c.GrantTypes}, {ru, &c.RedirectURIs}, {sc, &c.Scopes}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return Client{}, fmt.Errorf("identity: stored client %s is unreadable: %w", c.ID, err)
		}
	}
	return c, nil
}

// ListClients returns the clients of tenant tid, or the platform clients when tid is "".
func (d *Directory) ListClients(ctx context.Context, tid tenant.ID) ([]Client, error) {
	out := []Client{}
	err := d.db.View(ctx, clientScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+clientColumns+` FROM oauth_clients WHERE tenant_id = ? ORDER BY id`, tx.TenantID())
		if err != nil {
			return fmt.Errorf("identity: list clients: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanClient(rows)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

func clientNotFound(id string) error {
	return errs.E(errs.NotFound, "client_not_found", "client %q not found", errs.Clip(id, 64))
}

// DeleteClient removes a client of tenant tid (or a platform client when tid is "").
func (d *Directory) DeleteClient(ctx context.Context, tid tenant.ID, id string, actor tenant.Actor) error {
	return d.db.Update(ctx, clientScope(tid), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM oauth_clients WHERE tenant_id = ? AND id = ?`, tx.TenantID(), id)
		if err != nil {
			return fmt.Errorf("identity: delete client: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return clientNotFound(id)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM oauth_client_scope_use WHERE tenant_id = ? AND client_id = ?`, tx.TenantID(), id); err != nil {
			return fmt.Errorf("identity: delete client: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "client.deleted", id))
	})
}

// ClientByIDAllTenants finds a client by id whatever its tenant: the OpenID
// provider's entry point, where a client id arrives before any tenant is
// known. It crosses tenants; the client's TenantID then decides the scope
// of everything its tokens may do.
func (d *Directory) ClientByIDAllTenants(ctx context.Context, id string) (Client, error) {
	r, err := d.clientByID(ctx, id)
	return r.c, err
}

// clientRead is a client as read by id, with its secret's hash ("" for a
// public client).
type clientRead struct {
	c          Client
	secretHash string
}

// clientByID reads client id (through the read cache): clientNotFound
// when there is none.
func (d *Directory) clientByID(ctx context.Context, id string) (clientRead, error) {
	return d.clients.Get(ctx, id, func(ctx context.Context) (clientRead, error) {
		var r clientRead
		err := d.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			row := tx.QueryRow(ctx, `SELECT secret_hash, `+clientColumns+` FROM oauth_clients WHERE id = ?`, id)
			var err error
			r.c, err = scanClient(scannerFunc(func(dest ...any) error { return row.Scan(append([]any{&r.secretHash}, dest...)...) }))
			return err
		})
		if errors.Is(err, sql.ErrNoRows) {
			return clientRead{}, clientNotFound(id)
		}
		return r, err
	}, func(_ clientRead, err error) bool { return err == nil })
}

// AuthenticateClientAllTenants checks a confidential client's secret in
// constant time and returns the client. Unknown clients, public clients and
// wrong secrets all give the same error.
func (d *Directory) AuthenticateClientAllTenants(ctx context.Context, id, secret string) (Client, error) {
	r, err := d.clientByID(ctx, id)
	bad := errs.E(errs.Unauthenticated, "invalid_client", "client authentication failed")
	if errs.Is(err, "client_not_found") {
		subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(hashSecret("")))
		return Client{}, bad
	}
	if err != nil {
		return Client{}, err
	}
	if r.secretHash == "" || subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(r.secretHash)) != 1 {
		return Client{}, bad
	}
	return r.c, nil
}

type scannerFunc func(dest ...any) error

func (f scannerFunc) Scan(dest ...any) error { return f(dest...) }
