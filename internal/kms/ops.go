package kms

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// MaxPlaintext bounds what encrypt takes; larger data is encrypted with a
// data key (generate-data-key, or the SDK's envelope encryption).
const MaxPlaintext = 4096

// EncryptRequest encrypts up to 4 KiB under a key of the caller's tenant.
type EncryptRequest struct {
	KeyID             string  `json:"key_id"` // key_… or alias/…
	Plaintext         []byte  `json:"plaintext"`
	EncryptionContext Context `json:"encryption_context"`
}

// EncryptResponse is a ciphertext.
type EncryptResponse = api.EncryptResponse

// DecryptRequest decrypts a ciphertext of the caller's tenant.
type DecryptRequest struct {
	Ciphertext        []byte  `json:"ciphertext"`
	EncryptionContext Context `json:"encryption_context"`
}

// DecryptResponse is a plaintext.
type DecryptResponse = api.DecryptResponse

// DataKeyRequest asks for a data key encrypted under a key of the caller's tenant.
type DataKeyRequest struct {
	KeyID             string  `json:"key_id"`
	EncryptionContext Context `json:"encryption_context"`
	NumberOfBytes     int     `json:"number_of_bytes,omitempty"` // 16..64, default 32
}

// DataKeyResponse is a data key: its plaintext (unless asked without) and
// its ciphertext, which decrypt turns back into the plaintext.
type DataKeyResponse = api.DataKeyResponse

// ReEncryptRequest decrypts a ciphertext and encrypts its plaintext again,
// under the destination key (default: the same key's primary version) and
// context (default: the source context), without the plaintext leaving
// the service.
type ReEncryptRequest struct {
	Ciphertext                   []byte  `json:"ciphertext"`
	SourceEncryptionContext      Context `json:"source_encryption_context"`
	DestinationKeyID             string  `json:"destination_key_id,omitempty"`
	DestinationEncryptionContext Context `json:"destination_encryption_context,omitempty"`
}

// ReEncryptResponse is the new ciphertext.
type ReEncryptResponse = api.ReEncryptResponse

// load returns the key a name (id or alias) names in tenant tid, with its
// material unwrapped, from the cache or the database.
func (s *Service) load(ctx context.Context, tid tenant.ID, name string) (*loadedKey, error) {
	ref := keyRef{tid, name}
	if k, ok := s.keys.Get(ref); ok {
		return k, nil
	}
	started := s.keys.Generation()
	k, err := s.loadShared(ctx, ref)
	if err == nil && s.keys.Generation() != started {
		// A change committed while this request waited on a load another
		// request had begun before it: read again, alone.
		return s.loadFrom(ctx, ref)
	}
	return k, err
}

// loadShared is loadFrom with concurrent misses of one key sharing a load.
func (s *Service) loadShared(ctx context.Context, ref keyRef) (*loadedKey, error) {
	v, err, _ := s.loads.Do(string(ref.tenant)+"\x00"+ref.name, func() (any, error) { return s.loadFrom(ctx, ref) })
	if err != nil {
		return nil, err
	}
	return v.(*loadedKey), nil
}

// loadFrom reads a key and unwraps its versions, and caches it unless a
// change raced the read.
func (s *Service) loadFrom(ctx context.Context, ref keyRef) (*loadedKey, error) {
	tid, name := ref.tenant, ref.name
	{
		gen := s.keys.Generation()
		var lk *loadedKey
		err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
			k, err := resolve(ctx, tx, name, false)
			if err != nil {
				return err
			}
			lk = &loadedKey{meta: k, versions: map[int]*material{}}
			rows, err := tx.Query(ctx, `SELECT version, material, valid_to FROM kms_key_versions WHERE tenant_id = ? AND key_id = ? AND material <> ''`,
				tx.TenantID(), k.id)
			if err != nil {
				return fmt.Errorf("kms: read key versions: %w", err)
			}
			defer rows.Close()
			for rows.Next() {
				var ver int
				var wrapped string
				var validTo int64
				if err := rows.Scan(&ver, &wrapped, &validTo); err != nil {
					return fmt.Errorf("kms: read key versions: %w", err)
				}
				m, err := s.unwrap(tx.TenantID(), k.id, ver, wrapped)
				if err != nil {
					return err
				}
				m.validTo = micros(validTo)
				lk.versions[ver] = m
			}
			return rows.Err()
		})
		if err != nil {
			return nil, err
		}
		// A key not kept (a change raced the read, or the cache is off) is
		// used by this request and its waiters, then left to the collector
		// (its material is in the AEAD's key schedule only; see unwrap).
		s.keys.Put(ref, lk, gen)
		return lk, nil
	}
}

func (s *Service) unwrap(tid, keyID string, version int, wrapped string) (*material, error) {
	w, err := base64.StdEncoding.DecodeString(wrapped)
	if err != nil {
		return nil, fmt.Errorf("kms: stored material of %s v%d: %w", keyID, version, err)
	}
	raw, err := s.sealer.Unwrap(w, wrapAAD(tid, keyID, version))
	if err != nil {
		return nil, &errs.Error{Kind: errs.Internal, Code: "key_unwrap_failed", Detail: "a key's material does not unwrap under the root key", Err: err}
	}
	g, err := aeadFor(raw)
	clear(raw) // the AEAD holds its own key schedule, which Go cannot clear
	if err != nil {
		return nil, err
	}
	return &material{aead: g}, nil
}

// forEncryption returns the key's primary material, rotating the key first
// when its automatic rotation is due.
func (s *Service) forEncryption(ctx context.Context, tid tenant.ID, name string) (*loadedKey, *material, error) {
	k, err := s.load(ctx, tid, name)
	if err != nil {
		return nil, nil, err
	}
	if err := usable(k.meta); err != nil {
		return k, nil, err
	}
	if k.meta.rotation > 0 && !s.now().Before(k.meta.nextRotation) {
		if err := s.rotateDue(ctx, tid, k.meta.id); err != nil && !errors.Is(err, errNoRotation) {
			return k, nil, err
		}
		if k, err = s.load(ctx, tid, name); err != nil {
			return nil, nil, err
		}
	}
	m := k.versions[k.meta.primary]
	if m == nil {
		return k, nil, errs.E(errs.Conflict, "key_destroyed", "the primary material of key %s is gone", k.meta.id)
	}
	if err := s.checkExpiry(k.meta.id, m); err != nil {
		return k, nil, err
	}
	return k, m, nil
}

func (s *Service) checkExpiry(id string, m *material) error {
	if !m.validTo.IsZero() && !s.now().Before(m.validTo) {
		return errs.E(errs.Conflict, "key_material_expired", "the imported material of key %s expired on %s; import it again", id, m.validTo.Format(time.RFC3339))
	}
	return nil
}

// rotateDue rotates a key whose automatic rotation is due, once across
// nodes (the row lock; a second caller finds it done).
func (s *Service) rotateDue(ctx context.Context, tid tenant.ID, id string) error {
	return s.inval.Write(ctx, tid, tenant.Actor{Principal: "system"}, func(tx *storage.Tx) (inval.Change, error) {
		k, err := resolve(ctx, tx, id, true)
		if err != nil {
			return inval.Change{}, err
		}
		if k.rotation == 0 || s.now().Before(k.nextRotation) || k.state != StateEnabled {
			return inval.Change{}, errNoRotation
		}
		return inval.Change{Action: "kms.key_rotated", Target: k.id}, s.rotate(ctx, tx, k)
	})
}

var errNoRotation = errors.New("kms: rotation no longer due")

// record audits a cryptographic operation in the tenant's chain without
// waiting for the flush: tenant, principal, key, version, operation, the
// SHA-256 of the context, outcome.
func (s *Service) record(ctx context.Context, tid tenant.ID, actor tenant.Actor, op, keyID string, version int, ec Context, err error) {
	sum := sha256.Sum256(ec.appendCanonical(nil))
	detail := map[string]string{"context_sha256": hex.EncodeToString(sum[:])}
	if version > 0 {
		detail["key_version"] = strconv.Itoa(version)
	}
	outcome := audit.Success
	if err != nil {
		outcome = audit.Failure
		code := "internal"
		if e, ok := errs.As(err); ok {
			code = e.Code
			if e.Kind == errs.Forbidden {
				outcome = audit.Denied
			}
		}
		detail["code"] = code
	}
	ev := audit.Event{TenantID: string(tid), Principal: actor.Principal, Action: "kms." + op, Target: errs.Clip(keyID, 100),
		Outcome: outcome, RequestID: actor.RequestID, SourceIP: actor.SourceIP, Detail: detail}
	if aerr := s.audit.Enqueue(context.WithoutCancel(ctx), ev); aerr != nil {
		s.log.ErrorContext(ctx, "kms: audit enqueue failed", "err", aerr, "tenant", tid)
	}
}

// Encrypt encrypts up to 4 KiB under a key of tenant tid.
func (s *Service) Encrypt(ctx context.Context, tid tenant.ID, req EncryptRequest, actor tenant.Actor) (out EncryptResponse, err error) {
	defer func() {
		s.record(ctx, tid, actor, "encrypt", orName(out.KeyID, req.KeyID), out.KeyVersion, req.EncryptionContext, err)
	}()
	if err := req.EncryptionContext.checkTenant("encryption_context", string(tid)); err != nil {
		return out, err
	}
	if len(req.Plaintext) == 0 || len(req.Plaintext) > MaxPlaintext {
		return out, errs.Field("plaintext", "invalid_plaintext", "plaintext is 1 to %d bytes (base64 in JSON); encrypt more with a data key", MaxPlaintext)
	}
	k, m, err := s.forEncryption(ctx, tid, req.KeyID)
	if err != nil {
		return out, err
	}
	return EncryptResponse{Ciphertext: seal(m.aead, k.meta.id, k.meta.primary, req.Plaintext, req.EncryptionContext),
		KeyID: k.meta.id, KeyVersion: k.meta.primary}, nil
}

func orName(resolved, asked string) string {
	if resolved != "" {
		return resolved
	}
	return asked
}

// GenerateDataKey makes a random data key and returns it encrypted under
// a key of tenant tid, and in plaintext unless withoutPlaintext.
func (s *Service) GenerateDataKey(ctx context.Context, tid tenant.ID, req DataKeyRequest, withoutPlaintext bool, actor tenant.Actor) (out DataKeyResponse, err error) {
	op := "generate_data_key"
	if withoutPlaintext {
		op = "generate_data_key_without_plaintext"
	}
	defer func() {
		s.record(ctx, tid, actor, op, orName(out.KeyID, req.KeyID), out.KeyVersion, req.EncryptionContext, err)
	}()
	if err := req.EncryptionContext.checkTenant("encryption_context", string(tid)); err != nil {
		return out, err
	}
	n := req.NumberOfBytes
	if n == 0 {
		n = 32
	}
	if n < 16 || n > 64 {
		return out, errs.Field("number_of_bytes", "invalid_number_of_bytes", "a data key is 16 to 64 bytes")
	}
	k, m, err := s.forEncryption(ctx, tid, req.KeyID)
	if err != nil {
		return out, err
	}
	raw := make([]byte, n)
	rand.Read(raw)
	out = DataKeyResponse{Ciphertext: seal(m.aead, k.meta.id, k.meta.primary, raw, req.EncryptionContext), KeyID: k.meta.id, KeyVersion: k.meta.primary}
	if withoutPlaintext {
		clear(raw)
	} else {
		out.Plaintext = raw // the caller clears it once written out
	}
	return out, nil
}

// Decrypt decrypts a ciphertext of tenant tid with its encryption context.
func (s *Service) Decrypt(ctx context.Context, tid tenant.ID, req DecryptRequest, actor tenant.Actor) (out DecryptResponse, err error) {
	defer func() { s.record(ctx, tid, actor, "decrypt", out.KeyID, out.KeyVersion, req.EncryptionContext, err) }()
	pt, id, v, err := s.decrypt(ctx, tid, "ciphertext", req.Ciphertext, "encryption_context", req.EncryptionContext, actor)
	out.KeyID, out.KeyVersion = id, v
	if err != nil {
		return out, err
	}
	out.Plaintext = pt
	return out, nil
}

// decrypt opens ct; it returns the key id and version it names even when
// it fails after parsing.
func (s *Service) decrypt(ctx context.Context, tid tenant.ID, ctField string, ct []byte, ecField string, ec Context, actor tenant.Actor) ([]byte, string, int, error) {
	if err := ec.checkTenant(ecField, string(tid)); err != nil {
		return nil, "", 0, err
	}
	h, hdr, nonce, sealed, err := parseCiphertext(ct)
	if err != nil {
		return nil, "", 0, fieldErr(err, ctField)
	}
	k, err := s.load(ctx, tid, h.keyID)
	if errs.Is(err, "key_not_found") {
		s.crossTenantCheck(ctx, tid, h.keyID, actor)
		return nil, h.keyID, h.version, fieldErr(errBadCiphertext(), ctField)
	}
	if err != nil {
		return nil, h.keyID, h.version, err
	}
	if k.meta.state == StateDestroyed || k.meta.state == StatePendingDeletion {
		return nil, h.keyID, h.version, usable(k.meta)
	}
	m := k.versions[h.version]
	if m == nil {
		return nil, h.keyID, h.version, fieldErr(errBadCiphertext(), ctField)
	}
	if err := s.checkExpiry(k.meta.id, m); err != nil {
		return nil, h.keyID, h.version, err
	}
	pt, err := open(m.aead, hdr, nonce, sealed, ec)
	if err != nil {
		return nil, h.keyID, h.version, fieldErr(err, ctField)
	}
	return pt, h.keyID, h.version, nil
}

func fieldErr(err error, field string) error {
	if e, ok := errs.As(err); ok && e.Field != "" && e.Field != field {
		c := *e
		c.Field = field
		return &c
	}
	return err
}

// crossTenantCheck looks, across tenants, for the key a ciphertext names
// that the caller's tenant does not have: if another tenant owns it, the
// attempt is audited in the platform's chain (which names both tenants);
// the caller learns only that the ciphertext is not one of its own.
func (s *Service) crossTenantCheck(ctx context.Context, tid tenant.ID, keyID string, actor tenant.Actor) {
	var owner string
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT tenant_id FROM kms_keys WHERE id = ?`, keyID).Scan(&owner)
	})
	if err != nil || owner == string(tid) {
		return
	}
	ev := audit.Event{Principal: actor.Principal, Action: "kms.cross_tenant_attempt", Target: keyID, Outcome: audit.Denied,
		RequestID: actor.RequestID, SourceIP: actor.SourceIP, Detail: map[string]string{"caller_tenant": string(tid), "key_tenant": owner}}
	if aerr := s.audit.Enqueue(context.WithoutCancel(ctx), ev); aerr != nil {
		s.log.ErrorContext(ctx, "kms: audit enqueue failed", "err", aerr)
	}
}

// ReEncrypt moves a ciphertext to another key or context of tenant tid.
func (s *Service) ReEncrypt(ctx context.Context, tid tenant.ID, req ReEncryptRequest, actor tenant.Actor) (out ReEncryptResponse, err error) {
	dstEC := req.DestinationEncryptionContext
	if dstEC == nil {
		dstEC = req.SourceEncryptionContext
	}
	defer func() {
		s.record(ctx, tid, actor, "re_encrypt", orName(out.KeyID, req.DestinationKeyID), out.KeyVersion, dstEC, err)
	}()
	if err := dstEC.checkTenant("destination_encryption_context", string(tid)); err != nil {
		return out, err
	}
	pt, srcID, srcV, err := s.decrypt(ctx, tid, "ciphertext", req.Ciphertext, "source_encryption_context", req.SourceEncryptionContext, actor)
	if err != nil {
		return out, err
	}
	defer clear(pt)
	dst := req.DestinationKeyID
	if dst == "" {
		dst = srcID
	}
	k, m, err := s.forEncryption(ctx, tid, dst)
	if err != nil {
		return out, err
	}
	return ReEncryptResponse{Ciphertext: seal(m.aead, k.meta.id, k.meta.primary, pt, dstEC), KeyID: k.meta.id,
		KeyVersion: k.meta.primary, SourceKeyID: srcID, SourceKeyVersion: srcV}, nil
}
