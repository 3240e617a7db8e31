package identity

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // logos may be JPEG
	_ "image/png"  // or PNG
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Branding is how a tenant's sign-in page looks (api.Branding). What a
// tenant sets reaches its users' browsers, so every field is checked
// before it is stored: a name of printable text, a logo that decodes as
// a small PNG or JPEG (no SVG: it can carry script), a colour that keeps
// the page readable, a support link that is https: or mailto:.
type Branding = api.Branding

// Branding limits.
const (
	maxDisplayName = 100
	maxLogoBytes   = 32 << 10
	maxLogoSide    = 512
	maxSupportURL  = 512
	// minContrast is WCAG AA's for normal text: white on the primary colour.
	minContrast = 4.5
)

// checkBranding checks b and returns it as stored.
func checkBranding(b Branding) (Branding, error) {
	b.DisplayName = strings.TrimSpace(b.DisplayName)
	if utf8.RuneCountInString(b.DisplayName) > maxDisplayName || strings.IndexFunc(b.DisplayName, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return b, errs.Field("display_name", "invalid_branding", "display_name is at most %d printable characters", maxDisplayName)
	}
	if b.Logo != "" {
		raw, err := base64.StdEncoding.DecodeString(b.Logo)
		if err != nil {
			return b, errs.Field("logo", "invalid_branding", "logo is a base64 PNG or JPEG image")
		}
		if len(raw) > maxLogoBytes {
			return b, errs.Field("logo", "invalid_branding", "logo is at most %d KiB", maxLogoBytes>>10)
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(raw))
		if err != nil || (format != "png" && format != "jpeg") {
			return b, errs.Field("logo", "invalid_branding", "logo is a PNG or JPEG image")
		}
		if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > maxLogoSide || cfg.Height > maxLogoSide {
			return b, errs.Field("logo", "invalid_branding", "logo is at most %d × %d pixels", maxLogoSide, maxLogoSide)
		}
	}
	if b.PrimaryColor != "" {
		b.PrimaryColor = strings.ToLower(b.PrimaryColor)
		c, ok := parseColor(b.PrimaryColor)
		if !ok {
			return b, errs.Field("primary_color", "invalid_branding", "primary_color is #rrggbb")
		}
		if r := contrast(c, [3]float64{1, 1, 1}); r < minContrast {
			return b, errs.Field("primary_color", "low_contrast",
				"white text on %s has a contrast of %.1f:1; choose a darker colour (at least %.1f:1, WCAG AA)", b.PrimaryColor, r, minContrast)
		}
	}
	if b.SupportURL != "" {
		u, err := url.Parse(b.SupportURL)
		if err != nil || len(b.SupportURL) > maxSupportURL || strings.ContainsAny(b.SupportURL, " \t\r\n") ||
			!((u.Scheme == "https" && u.Host != "") || (u.Scheme == "mailto" && u.Opaque != "")) {
			return b, errs.Field("support_url", "invalid_branding", "support_url is an https: or mailto: URL of at most %d characters", maxSupportURL)
		}
	}
	return b, nil
}

// parseColor reads #rrggbb as linear-light sRGB channels.
func parseColor(s string) ([3]float64, bool) {
	var c [3]float64
	if len(s) != 7 || s[0] != '#' {
		return c, false
	}
	for i := range 3 {
		v, err := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
		if err != nil {
			return c, false
		}
		x := float64(v) / 255
		if x <= 0.03928 {
			c[i] = x / 12.92
		} else {
			c[i] = math.Pow((x+0.055)/1.055, 2.4)
		}
	}
	return c, true
}

// contrast is WCAG 2's contrast ratio of two linear-light colours.
func contrast(a, b [3]float64) float64 {
	l := func(c [3]float64) float64 { return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2] }
	la, lb := l(a), l(b)
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)
}

// Branding returns tenant tid's branding (empty if it set none).
func (d *Directory) Branding(ctx context.Context, tid tenant.ID) (Branding, error) {
	var b Branding
	var at int64
	err := d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		err := tx.QueryRow(ctx, `SELECT display_name, logo, primary_color, support_url, updated_at FROM tenant_branding WHERE tenant_id = ?`,
			tx.TenantID()).Scan(&b.DisplayName, &b.Logo, &b.PrimaryColor, &b.SupportURL, &at)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return Branding{}, fmt.Errorf("identity: branding: %w", err)
	}
	if at != 0 {
		b.UpdatedAt = time.UnixMicro(at).UTC()
	}
	return b, nil
}

// SetBranding replaces tenant tid's branding.
func (d *Directory) SetBranding(ctx context.Context, tid tenant.ID, in Branding, actor tenant.Actor) (Branding, error) {
	b, err := checkBranding(in)
	if err != nil {
		return Branding{}, err
	}
	b.UpdatedAt = d.clock.Now().UTC().Truncate(time.Microsecond)
	err = d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_branding (tenant_id, display_name, logo, primary_color, support_url, updated_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET display_name = excluded.display_name, logo = excluded.logo,
			primary_color = excluded.primary_color, support_url = excluded.support_url, updated_at = excluded.updated_at`,
			tx.TenantID(), b.DisplayName, b.Logo, b.PrimaryColor, b.SupportURL, b.UpdatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("identity: store branding: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "identity.branding_updated", tx.TenantID()))
	})
	return b, err
}

// DeleteBranding puts tenant tid's sign-in page back to the default look.
func (d *Directory) DeleteBranding(ctx context.Context, tid tenant.ID, actor tenant.Actor) error {
	return d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tenant_branding WHERE tenant_id = ?`, tx.TenantID()); err != nil {
			return fmt.Errorf("identity: delete branding: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "identity.branding_deleted", tx.TenantID()))
	})
}
