package kms

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Importing key material (bring your own key):
//
//  1. Create a key with origin "external" (state pending_import).
//  2. Ask for import parameters: an RSA-3072 public key (PEM, SPKI) made
//     for this one import, and an import token, valid for 24 hours.
//  3. Encrypt 32 bytes of AES-256 material with RSA-OAEP-SHA256 under that
//     public key (e.g. openssl pkeyutl -encrypt -pkeyopt rsa_padding_mode:oaep
//     -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256) and upload it
//     with the token, optionally with an expiry (valid_to) after which the
//     material no longer works until it is imported again.
//
// Each import adds a version and makes it primary; the private key is
// stored wrapped by the root key and deleted once used.

const (
	importKeyBits  = 3072
	importTokenTTL = 24 * time.Hour
	importPrefix   = "imp"
)

// ImportParams are what a key's owner needs to wrap material for import.
type ImportParams = api.ImportParams

// ImportRequest uploads wrapped material.
type ImportRequest = api.ImportRequest

// GetImportParams makes a one-time RSA key pair for importing material
// into key name of tenant tid (a key of origin external).
func (s *Service) GetImportParams(ctx context.Context, tid tenant.ID, name string, actor tenant.Actor) (ImportParams, error) {
	priv, err := rsa.GenerateKey(rand.Reader, importKeyBits)
	if err != nil {
		return ImportParams{}, fmt.Errorf("kms: import key pair: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return ImportParams{}, fmt.Errorf("kms: import key pair: %w", err)
	}
	defer clear(der)
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return ImportParams{}, fmt.Errorf("kms: import key pair: %w", err)
	}
	out := ImportParams{ImportToken: ids.New(importPrefix), Algorithm: "RSAES_OAEP_SHA_256",
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
		ExpiresAt: s.now().Add(importTokenTTL)}
	err = s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return inval.Change{}, err
		}
		k, err := resolve(ctx, tx, name, true)
		if err != nil {
			return inval.Change{}, err
		}
		out.KeyID = k.id
		if k.origin != OriginExternal {
			return inval.Change{}, errs.E(errs.Conflict, "import_not_supported", "key %s was made by Bulkhead; create a key with origin external to import material", k.id)
		}
		if k.state == StatePendingDeletion || k.state == StateDestroyed {
			return inval.Change{}, usable(k)
		}
		w, err := s.sealer.Wrap(der, importAAD(tx.TenantID(), k.id, out.ImportToken))
		if err != nil {
			return inval.Change{}, fmt.Errorf("kms: wrap import key: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO kms_import_tokens (tenant_id, id, key_id, private_key, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			tx.TenantID(), out.ImportToken, k.id, base64.StdEncoding.EncodeToString(w), out.ExpiresAt.UnixMicro(), s.now().UnixMicro()); err != nil {
			return inval.Change{}, fmt.Errorf("kms: store import key: %w", err)
		}
		return inval.Change{Action: "kms.import_params_issued", Target: k.id}, nil
	})
	return out, err
}

func importAAD(tid, keyID, token string) []byte {
	return fmt.Appendf(nil, "bulkhead/kms/import/v1|%s|%s|%s", tid, keyID, token)
}

// Import adds the uploaded material to key name as its new primary version.
func (s *Service) Import(ctx context.Context, tid tenant.ID, name string, req ImportRequest, actor tenant.Actor) (Key, error) {
	if !ids.Valid(req.ImportToken, importPrefix) {
		return Key{}, errs.Field("import_token", "invalid_import_token", "the import token is not one this key was given, or it expired")
	}
	if len(req.EncryptedKeyMaterial) == 0 || len(req.EncryptedKeyMaterial) > 1024 {
		return Key{}, errs.Field("encrypted_key_material", "invalid_key_material", "encrypted_key_material is the RSA-OAEP-SHA256 encryption of 32 bytes")
	}
	var validTo time.Time
	if req.ValidTo != nil {
		validTo = req.ValidTo.UTC().Truncate(time.Microsecond)
		if !validTo.After(s.now()) {
			return Key{}, errs.Field("valid_to", "invalid_valid_to", "valid_to must be in the future")
		}
	}
	return s.changeKey(ctx, tid, name, actor, true, func(tx *storage.Tx, k keyRow) (string, error) {
		if k.state == StatePendingDeletion || k.state == StateDestroyed {
			return "", usable(k)
		}
		var wrapped string
		var expires int64
		err := tx.QueryRow(ctx, `SELECT private_key, expires_at FROM kms_import_tokens WHERE tenant_id = ? AND id = ? AND key_id = ?`,
			tx.TenantID(), req.ImportToken, k.id).Scan(&wrapped, &expires)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && !s.now().Before(time.UnixMicro(expires))) {
			return "", errs.Field("import_token", "invalid_import_token", "the import token is not one this key was given, or it expired")
		}
		if err != nil {
			return "", fmt.Errorf("kms: read import token: %w", err)
		}
		raw, err := s.openImport(tx.TenantID(), k.id, req.ImportToken, wrapped, req.EncryptedKeyMaterial)
		if err != nil {
			return "", err
		}
		defer clear(raw)
		v := k.primary + 1
		if err := s.insertVersion(ctx, tx, k.id, v, raw, validTo); err != nil {
			return "", err
		}
		if _, err := tx.Exec(ctx, `UPDATE kms_keys SET state = ?, primary_version = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			StateEnabled, v, s.now().UnixMicro(), tx.TenantID(), k.id); err != nil {
			return "", fmt.Errorf("kms: import: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM kms_import_tokens WHERE tenant_id = ? AND id = ?`, tx.TenantID(), req.ImportToken); err != nil {
			return "", fmt.Errorf("kms: import: %w", err)
		}
		return "kms.key_material_imported", nil
	})
}

// openImport decrypts uploaded material with the import token's private key.
func (s *Service) openImport(tid, keyID, token, wrapped string, ct []byte) ([]byte, error) {
	w, err := base64.StdEncoding.DecodeString(wrapped)
	if err != nil {
		return nil, fmt.Errorf("kms: stored import key: %w", err)
	}
	der, err := s.sealer.Unwrap(w, importAAD(tid, keyID, token))
	if err != nil {
		return nil, fmt.Errorf("kms: stored import key: %w", err)
	}
	defer clear(der)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("kms: stored import key: %w", err)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("kms: stored import key is not RSA")
	}
	raw, err := rsa.DecryptOAEP(sha256.New(), nil, priv, ct, nil)
	if err != nil || len(raw) != 32 {
		clear(raw)
		return nil, errs.Field("encrypted_key_material", "invalid_key_material",
			"the material does not decrypt with this import token's key (RSA-OAEP with SHA-256), or it is not 32 bytes")
	}
	return raw, nil
}
