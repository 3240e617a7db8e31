package bench

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/envelope"
)

// SDK envelope encryption with its data-key cache (DESIGN: ≥ 80 % of raw
// AES-256-GCM throughput). Each iteration encrypts and decrypts one
// message with the SDK (cache on, in-memory key provider) and, interleaved
// with it, seals and opens the same plaintext with crypto/cipher's
// AES-256-GCM in 64 KiB chunks under one key. Interleaving keeps the ratio
// honest when the machine's load changes during the run. MB/s counts
// plaintext bytes (10^6) of an encrypt plus a decrypt per second.
//
// Two ways of handling buffers, each the same on both sides:
//
//   - reuse: the SDK appends to buffers reused from message to message
//     (AppendEncrypt, AppendDecrypt), the raw side seals and opens into
//     buffers allocated once. This is the SDK's own overhead: framing,
//     header, per-message key derivation, cache lookup, key commitment.
//   - alloc: Encrypt and Decrypt, which return new buffers; the raw side
//     allocates its two output buffers per message too. Allocating (and
//     zeroing, page-faulting and collecting) 2 MiB per message takes about
//     40 % of either side's time here.

// envelopeBenchProvider is an in-memory envelope.KeyProvider: data keys
// wrapped with AES-256-GCM under one fixed tenant key, bound to the
// context. With the cache on it is called once per data key, not per
// message.
type envelopeBenchProvider struct{ aead cipher.AEAD }

func newEnvelopeBenchProvider() *envelopeBenchProvider {
	k := sha256.Sum256([]byte("bench tenant key"))
	block, _ := aes.NewCipher(k[:])
	aead, _ := cipher.NewGCM(block)
	return &envelopeBenchProvider{aead: aead}
}

func envelopeBenchAAD(ec map[string]string) []byte {
	return []byte(fmt.Sprint(ec)) // fmt prints maps sorted by key
}

func (p *envelopeBenchProvider) GenerateDataKey(_ context.Context, _ string, ec map[string]string) ([]byte, []byte, error) {
	dk := make([]byte, envelope.DataKeySize)
	rand.Read(dk)
	nonce := make([]byte, p.aead.NonceSize())
	rand.Read(nonce)
	return dk, p.aead.Seal(nonce, nonce, dk, envelopeBenchAAD(ec)), nil
}

func (p *envelopeBenchProvider) DecryptDataKey(_ context.Context, wrapped []byte, ec map[string]string) ([]byte, error) {
	ns := p.aead.NonceSize()
	if len(wrapped) < ns {
		return nil, errors.New("short wrapped key")
	}
	return p.aead.Open(nil, wrapped[:ns], wrapped[ns:], envelopeBenchAAD(ec))
}

// rawGCM seals and opens plaintext in chunks of 64 KiB with one
// AES-256-GCM key, a counter nonce per chunk, into preallocated buffers.
type rawGCM struct {
	aead   cipher.AEAD
	sealed []byte
	opened []byte
	ctr    uint64
}

const rawChunk = 64 << 10

func newRawGCM(size int) *rawGCM {
	var k [32]byte
	rand.Read(k[:])
	block, _ := aes.NewCipher(k[:])
	aead, _ := cipher.NewGCM(block)
	chunks := (size + rawChunk - 1) / rawChunk
	return &rawGCM{aead: aead, sealed: make([]byte, 0, size+chunks*aead.Overhead()), opened: make([]byte, 0, size)}
}

func (r *rawGCM) roundTrip(pt []byte, alloc bool) error {
	var nonce [12]byte
	if alloc { // new buffers for every message, as Encrypt and Decrypt make
		r.sealed, r.opened = make([]byte, 0, cap(r.sealed)), make([]byte, 0, cap(r.opened))
	}
	r.sealed = r.sealed[:0]
	first := r.ctr
	for p := pt; len(p) > 0; p = p[min(rawChunk, len(p)):] {
		r.ctr++
		binary.BigEndian.PutUint64(nonce[4:], r.ctr)
		r.sealed = r.aead.Seal(r.sealed, nonce[:], p[:min(rawChunk, len(p))], nil)
	}
	r.opened = r.opened[:0]
	ctr := first
	for s := r.sealed; len(s) > 0; {
		n := min(rawChunk+r.aead.Overhead(), len(s))
		ctr++
		binary.BigEndian.PutUint64(nonce[4:], ctr)
		var err error
		if r.opened, err = r.aead.Open(r.opened, nonce[:], s[:n], nil); err != nil {
			return err
		}
		s = s[n:]
	}
	return nil
}

func BenchmarkEnvelope(b *testing.B) {
	for _, size := range []int{1 << 20, 16 << 10} {
		for _, reuse := range []bool{false, true} {
			name := fmt.Sprintf("%dKiB/alloc", size>>10)
			if reuse {
				name = fmt.Sprintf("%dKiB/reuse", size>>10)
			}
			b.Run(name, func(b *testing.B) { benchEnvelope(b, size, reuse) })
		}
	}
}

// benchEnvelope interleaves the raw and the SDK round trips of size bytes
// (see above for reuse).
func benchEnvelope(b *testing.B, size int, reuse bool) {
	ctx := context.Background()
	c, err := envelope.New(envelope.Config{
		Provider: newEnvelopeBenchProvider(),
		Cache:    envelope.NewCache(envelope.CacheConfig{}), // defaults: 5 min, 2^32 messages per data key
	})
	if err != nil {
		b.Fatal(err)
	}
	ec := map[string]string{"tenant_id": "acme", "table": "documents"}
	pt := make([]byte, size)
	rand.Read(pt)
	raw := newRawGCM(size)
	// Warm up both (the SDK's first message makes and caches its data
	// keys) and check that they round-trip.
	if err := raw.roundTrip(pt, false); err != nil || !bytes.Equal(raw.opened, pt) {
		b.Fatalf("raw round trip: %v", err)
	}
	blob, err := c.Encrypt(ctx, "alias/customer-acme", ec, pt)
	if err != nil {
		b.Fatal(err)
	}
	if got, err := c.Decrypt(ctx, blob, ec); err != nil || !bytes.Equal(got, pt) {
		b.Fatalf("SDK round trip: %v", err)
	}
	var blobBuf, ptBuf []byte
	if reuse {
		blobBuf, ptBuf = make([]byte, 0, 2*size), make([]byte, 0, size)
	}
	b.ReportAllocs()
	var tRaw, tSDK time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := raw.roundTrip(pt, !reuse); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		blob, err := c.AppendEncrypt(ctx, blobBuf, "alias/customer-acme", ec, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.AppendDecrypt(ctx, ptBuf, blob, ec); err != nil {
			b.Fatal(err)
		}
		tRaw += t1.Sub(t0)
		tSDK += time.Since(t1)
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/tSDK.Seconds(), "sdk_MB/s")
	b.ReportMetric(mb/tRaw.Seconds(), "raw_MB/s")
	b.ReportMetric(100*tRaw.Seconds()/tSDK.Seconds(), "sdk/raw_%")
}
