package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"
)

// Token validation in the SDK middleware (DESIGN: uncached ≥ 85 % of the raw
// signature-verify rate of Go's crypto; cached ≥ 500,000/s per core). The
// raw benchmarks verify the very signature of the token the Validate
// benchmarks validate: SHA-256 of the signing input and ecdsa.Verify, or
// ed25519.Verify. Run with -cpu 1 for per-core figures.

const benchAudience = "orders-api"

// benchToken starts a test provider, signs a typical access token (about
// 600 bytes) with a new key of alg, and returns it with the key.
func benchToken(b *testing.B, alg string) (*authtest.Server, *authtest.Key, string) {
	b.Helper()
	op := authtest.NewServer(b)
	var k *authtest.Key
	if alg == "ES256" {
		k = op.AddKey(op.Issuer(), authtest.ES256)
	} else {
		k = op.AddKey(op.Issuer(), authtest.EdDSA)
	}
	return op, k, k.Sign(authtest.Claims(op.Issuer(), benchAudience, "acme", time.Now()))
}

// splitToken returns a compact JWS's signing input and decoded signature.
func splitToken(b *testing.B, tok string) ([]byte, []byte) {
	b.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	return []byte(tok[:i]), sig
}

func tokenRate(b *testing.B, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, unit)
	}
}

func BenchmarkRawVerifyES256(b *testing.B) {
	_, k, tok := benchToken(b, "ES256")
	input, sig := splitToken(b, tok)
	pub := k.Public.(*ecdsa.PublicKey)
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.Sum256(input)
		if !ecdsa.Verify(pub, h[:], r, s) {
			b.Fatal("signature does not verify")
		}
	}
	tokenRate(b, "verifies/s")
}

func BenchmarkRawVerifyEdDSA(b *testing.B) {
	_, k, tok := benchToken(b, "EdDSA")
	input, sig := splitToken(b, tok)
	pub := k.Public.(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, input, sig) {
			b.Fatal("signature does not verify")
		}
	}
	tokenRate(b, "verifies/s")
}

// benchValidate validates tok in a loop after one warm-up validation (which
// fetches the provider's keys).
func benchValidate(b *testing.B, op *authtest.Server, tok string, cacheSize int) {
	v, err := auth.NewValidator(auth.Config{Issuer: op.Issuer(), Audience: benchAudience, HTTPClient: op.Client(), CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Validate(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Validate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	tokenRate(b, "validations/s")
}

func BenchmarkValidateES256Uncached(b *testing.B) {
	op, _, tok := benchToken(b, "ES256")
	benchValidate(b, op, tok, -1)
}

func BenchmarkValidateEdDSAUncached(b *testing.B) {
	op, _, tok := benchToken(b, "EdDSA")
	benchValidate(b, op, tok, -1)
}

func BenchmarkValidateCached(b *testing.B) {
	op, _, tok := benchToken(b, "ES256")
	benchValidate(b, op, tok, 0)
}

// BenchmarkValidateVsRaw interleaves one raw verify and one uncached
// Validate of the same token per iteration and reports the uncached rate as
// a percentage of the raw rate (the DESIGN target is ≥ 85). Interleaving
// makes the ratio hold up on a machine whose load changes during the run,
// where the separate benchmarks above can drift apart.
func BenchmarkValidateVsRaw(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			op, k, tok := benchToken(b, alg)
			input, sig := splitToken(b, tok)
			var raw func() bool
			switch pub := k.Public.(type) {
			case *ecdsa.PublicKey:
				r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
				raw = func() bool { h := sha256.Sum256(input); return ecdsa.Verify(pub, h[:], r, s) }
			case ed25519.PublicKey:
				raw = func() bool { return ed25519.Verify(pub, input, sig) }
			}
			v, err := auth.NewValidator(auth.Config{Issuer: op.Issuer(), Audience: benchAudience, HTTPClient: op.Client(), CacheSize: -1})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := v.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
			var tRaw, tValidate time.Duration
			for b.Loop() {
				t0 := time.Now()
				if !raw() {
					b.Fatal("signature does not verify")
				}
				t1 := time.Now()
				if _, err := v.Validate(ctx, tok); err != nil {
					b.Fatal(err)
				}
				tRaw += t1.Sub(t0)
				tValidate += time.Since(t1)
			}
			b.ReportMetric(100*tRaw.Seconds()/tValidate.Seconds(), "uncached/raw_%")
			b.ReportMetric(float64(tValidate.Nanoseconds())/float64(b.N), "validate_ns/op")
			b.ReportMetric(float64(tRaw.Nanoseconds())/float64(b.N), "raw_ns/op")
		})
	}
}
