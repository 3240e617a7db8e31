package provider

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

// ErrPublicURLMismatch is CheckPublicURL's refusal of a node whose public
// URL is not the one recorded in the database.
var ErrPublicURLMismatch = errors.New("provider: this node's public URL is not the one its database records")

// CheckPublicURL makes sure every node of a database serves under one
// public URL. The URL is the platform issuer: every token carries it (and
// silo issuers are under it), and a node accepts only tokens of its own
// issuer, so two nodes with different URLs refuse each other's tokens with
// a bare 401. The first node records its URL; a node with another gets
// ErrPublicURLMismatch, saying which URL to start it with.
//
// With change (bulkhead init --new-public-url), the node's URL replaces
// the recorded one instead, audited in the platform chain; tokens issued
// under the old URL are refused from then on. It returns the URL it
// replaced ("" when it changed nothing).
func (p *Provider) CheckPublicURL(ctx context.Context, change bool) (from string, err error) {
	url := p.base.String()
	now := p.clock().Now().UnixMicro()
	err = p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if err := tx.Lock(ctx, "oidc:public-url"); err != nil {
			return err
		}
		var recorded string
		err := tx.QueryRow(ctx, `SELECT url FROM oidc_public_url WHERE id = 1`).Scan(&recorded)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.Exec(ctx, `INSERT INTO oidc_public_url (id, url, created_at, updated_at) VALUES (1, ?, ?, ?)`, url, now, now)
			if err != nil {
				return fmt.Errorf("provider: record the public URL: %w", err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("provider: read the public URL: %w", err)
		case recorded == url:
			return nil
		case !change:
			return fmt.Errorf("%w: this node's is %s; the database's, recorded at its first start, is %s. "+
				"Every node must serve under the same public URL, the issuer of every token: start this node with --public-url %s "+
				"(or BULKHEAD_PUBLIC_URL). To change the URL deliberately, stop every node and run "+
				"`bulkhead init --new-public-url URL`; tokens issued under the old URL are refused after the change",
				ErrPublicURLMismatch, url, recorded, recorded)
		}
		if _, err := tx.Exec(ctx, `UPDATE oidc_public_url SET url = ?, updated_at = ? WHERE id = 1`, url, now); err != nil {
			return fmt.Errorf("provider: change the public URL: %w", err)
		}
		from = recorded
		return p.cfg.Audit.AppendTx(ctx, tx, audit.Event{Principal: "system:init", Action: "oidc.public_url_changed",
			Target: "public-url", Detail: map[string]string{"from": recorded, "to": url}})
	})
	if err != nil {
		return "", err
	}
	return from, nil
}
