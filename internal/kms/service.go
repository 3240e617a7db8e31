package kms

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Seal encrypts plaintext under tenant tid's default key
// (alias/customer-<tenant>) with the encryption context ec, which must name
// tid. It is for Bulkhead's own services that keep tenant secrets at rest
// (the connections' token shares); they audit their own acts, so Seal
// writes no kms.* event.
func (s *Service) Seal(ctx context.Context, tid tenant.ID, plaintext []byte, ec Context) ([]byte, error) {
	if err := ec.checkTenant("encryption_context", string(tid)); err != nil {
		return nil, err
	}
	k, m, err := s.forEncryption(ctx, tid, DefaultAlias(tid))
	if err != nil {
		return nil, err
	}
	return seal(m.aead, k.meta.id, k.meta.primary, plaintext, ec), nil
}

// Open decrypts what Seal made for tenant tid with the same context. Like
// Seal, it is for Bulkhead's own services and writes no audit event; the
// caller clears the plaintext when done.
func (s *Service) Open(ctx context.Context, tid tenant.ID, ciphertext []byte, ec Context) ([]byte, error) {
	pt, _, _, err := s.decrypt(ctx, tid, "ciphertext", ciphertext, "encryption_context", ec, tenant.Actor{Principal: "system"})
	return pt, err
}
