package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"
	"github.com/go-jose/go-jose/v4"
)

func BenchmarkTmpParts(b *testing.B) {
	op := authtest.NewServer(b)
	k := op.AddKey(op.Issuer(), authtest.EdDSA)
	tok := k.Sign(authtest.Claims(op.Issuer(), "api", "acme", time.Now()))
	v, _ := NewValidator(Config{Issuer: op.Issuer(), Audience: "api", HTTPClient: op.Client(), CacheSize: -1})
	v.Validate(context.Background(), tok)
	jws, _ := jose.ParseSignedCompact(tok, allowedAlgorithms)
	payload := jws.UnsafePayloadWithoutVerification()
	b.Run("compact", func(b *testing.B) {
		for b.Loop() {
			compactJWS(tok)
		}
	})
	b.Run("jose-parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			jose.ParseSignedCompact(tok, allowedAlgorithms)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decodeClaims(payload)
		}
	})
	raw, _ := decodeClaims(payload)
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		now := time.Now()
		for b.Loop() {
			v.checkClaims(raw, v.platform, now)
		}
	})
	b.Run("keylookup", func(b *testing.B) {
		now := time.Now()
		for b.Loop() {
			ik, _ := v.issuerKeys(raw.Iss, now)
			v.key(context.Background(), ik, k.ID, now)
		}
	})
	b.Run("lastdot", func(b *testing.B) {
		for b.Loop() {
			_ = tok[:strings.LastIndexByte(tok, '.')]
		}
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.Validate(context.Background(), tok)
		}
	})
	key := v.platform.keys.Load().keys[k.ID]
	sig := jws.Signatures[0].Signature
	in := tok[:strings.LastIndexByte(tok, '.')]
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			key.verify(in, sig)
		}
	})
}
