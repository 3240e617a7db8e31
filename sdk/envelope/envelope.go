package envelope

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Config configures a Crypter.
type Config struct {
	// Provider makes and unwraps data keys (required), for example
	// KMSProvider{Client: c}.
	Provider KeyProvider
	// Cache, if not nil, keeps data keys for reuse within its limits;
	// without it every message costs a provider call.
	Cache *Cache
	// Partition names the Crypter's share of Cache. Crypters that share a
	// Cache share entries only if they have the same Partition: give the
	// same one only to Crypters whose providers act for the same
	// principal. Empty means a random partition of this Crypter's own.
	Partition string
	// FrameSize is the plaintext size of a frame, MinFrameSize to
	// MaxFrameSize; 0 means DefaultFrameSize. A decrypting reader holds
	// one frame in memory.
	FrameSize int
}

// Crypter encrypts and decrypts messages with data keys of its Provider.
// It is safe for concurrent use.
type Crypter struct {
	provider  KeyProvider
	cache     *Cache
	partition string
	frameSize int
}

// New returns a Crypter.
func New(cfg Config) (*Crypter, error) {
	if cfg.Provider == nil {
		return nil, errors.New("envelope: no key provider")
	}
	fs := cfg.FrameSize
	if fs == 0 {
		fs = DefaultFrameSize
	}
	if fs < MinFrameSize || fs > MaxFrameSize {
		return nil, fmt.Errorf("envelope: frame size %d not in [%d, %d]", fs, MinFrameSize, MaxFrameSize)
	}
	part := cfg.Partition
	if part == "" {
		var r [16]byte
		rand.Read(r[:])
		part = "random:" + hex.EncodeToString(r[:])
	}
	return &Crypter{provider: cfg.Provider, cache: cfg.Cache, partition: part, frameSize: fs}, nil
}

// messageKeys are the secrets of one message, derived from its data key
// and message id.
type messageKeys struct {
	aead   cipher.AEAD
	nonce  [nonceSize]byte // frame i's nonce is nonce XOR i (in its last 8 bytes)
	commit [commitSize]byte
}

const kdfInfo = "bulkhead envelope v1 AES-256-GCM HKDF-SHA256 commit"

// deriveKeys derives a message's AES-256-GCM key, nonce base and key
// commitment: HKDF-SHA256(data key, salt = message id, kdfInfo), 76 bytes.
// It zeroes its intermediate key bytes (not the AES key schedule inside
// the cipher.AEAD, which Go does not expose).
func deriveKeys(dataKey *[DataKeySize]byte, msgID []byte) (*messageKeys, error) {
	okm, err := hkdf.Key(sha256.New, dataKey[:], msgID, kdfInfo, 32+nonceSize+commitSize)
	if err != nil {
		return nil, err
	}
	defer clear(okm)
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	mk := &messageKeys{aead: aead}
	copy(mk.nonce[:], okm[32:32+nonceSize])
	copy(mk.commit[:], okm[32+nonceSize:32+nonceSize+commitSize])
	return mk, nil
}

// frameNonce returns the nonce of frame seq (0 is the header's tag).
func (mk *messageKeys) frameNonce(n *[nonceSize]byte, seq uint64) []byte {
	*n = mk.nonce
	binary.BigEndian.PutUint64(n[4:], binary.BigEndian.Uint64(n[4:])^seq)
	return n[:]
}

// headerTag appends the tag over the header's authenticated bytes.
func (mk *messageKeys) headerTag(dst, authed []byte, nonce *[nonceSize]byte) []byte {
	return mk.aead.Seal(dst, mk.frameNonce(nonce, 0), nil, authed)
}

// verifyHeader checks the key commitment and the header tag.
func (mk *messageKeys) verifyHeader(h *header) error {
	if subtle.ConstantTimeCompare(mk.commit[:], h.commit) != 1 {
		return fmt.Errorf("%w: key commitment", ErrAuthentication)
	}
	var n [nonceSize]byte
	var none [0]byte
	if _, err := mk.aead.Open(none[:0], mk.frameNonce(&n, 0), h.tag, h.authed); err != nil {
		return fmt.Errorf("%w: header", ErrAuthentication)
	}
	return nil
}

// newMessage derives the keys of a new message from a data key (which it
// zeroes) and appends the message's header to dst.
func (c *Crypter) newMessage(dst []byte, dk *[DataKeySize]byte, context, wrapped []byte, nonce *[nonceSize]byte) ([]byte, *messageKeys, error) {
	var msgID [MessageIDSize]byte
	rand.Read(msgID[:])
	mk, err := deriveKeys(dk, msgID[:])
	clear(dk[:])
	if err != nil {
		return nil, nil, err
	}
	start := len(dst)
	dst = appendHeader(dst, AlgAES256GCMHKDF, msgID[:], c.frameSize, context, wrapped, mk.commit[:])
	dst = mk.headerTag(dst, dst[start:], nonce)
	return dst, mk, nil
}

// sealedSize is the encoded size of n bytes of plaintext in frames of fs.
func sealedSize(n, fs int) int {
	regular := 0
	if n > 0 {
		regular = (n - 1) / fs
	}
	return regular*(fs+frameOverhead) + (n - regular*fs) + frameOverhead
}

// Encrypt encrypts plaintext under a new or cached data key of keyID (a
// key id or alias) with the encryption context ec, which must hold the
// caller's tenant_id, and returns the message. Decrypt needs the same ec.
func (c *Crypter) Encrypt(ctx context.Context, keyID string, ec map[string]string, plaintext []byte) ([]byte, error) {
	return c.AppendEncrypt(ctx, nil, keyID, ec, plaintext)
}

// AppendEncrypt is Encrypt appending the message to dst, which must not
// overlap plaintext: with a dst of enough capacity, reused from message
// to message, it allocates no buffer for the message.
func (c *Crypter) AppendEncrypt(ctx context.Context, dst []byte, keyID string, ec map[string]string, plaintext []byte) ([]byte, error) {
	var ecBuf [256]byte
	ecb, tenant, err := appendContext(ecBuf[:0], ec)
	if err != nil {
		return nil, err
	}
	var dk [DataKeySize]byte
	wrapped, err := c.encryptionKey(ctx, &dk, keyID, tenant, ec, ecb, uint64(len(plaintext)), true)
	if err != nil {
		return nil, err
	}
	var nonce [nonceSize]byte
	var aad [8 + frameHeaderSize]byte
	out := slices.Grow(dst, headerSize(ecb, wrapped)+sealedSize(len(plaintext), c.frameSize))
	out, mk, err := c.newMessage(out, &dk, ecb, wrapped, &nonce)
	if err != nil {
		return nil, err
	}
	for seq := uint64(1); ; seq++ {
		n := min(len(plaintext), c.frameSize)
		final := len(plaintext) <= c.frameSize
		out = append(out, make([]byte, frameHeaderSize)...)
		fh := out[len(out)-frameHeaderSize:]
		putFrameHeader(fh, final, n)
		out = mk.aead.Seal(out, mk.frameNonce(&nonce, seq), plaintext[:n], frameAAD(&aad, seq, fh))
		plaintext = plaintext[n:]
		if final {
			return out, nil
		}
	}
}

// Decrypt decrypts a message of Encrypt or of an encrypting writer. ec
// must hold a tenant_id and equal the message's encryption context. On an
// error no plaintext is returned.
func (c *Crypter) Decrypt(ctx context.Context, blob []byte, ec map[string]string) ([]byte, error) {
	return c.AppendDecrypt(ctx, nil, blob, ec)
}

// AppendDecrypt is Decrypt appending the plaintext to dst, which must not
// overlap blob. On an error it returns nil and zeroes what it had
// appended.
func (c *Crypter) AppendDecrypt(ctx context.Context, dst, blob []byte, ec map[string]string) ([]byte, error) {
	var ecBuf [256]byte
	ecb, tenant, err := appendContext(ecBuf[:0], ec)
	if err != nil {
		return nil, err
	}
	var h header
	total, err := parseBlob(blob, &h)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(h.context, ecb) {
		return nil, ErrContextMismatch
	}
	mk, err := c.openMessage(ctx, &h, tenant, ec, ecb)
	if err != nil {
		return nil, err
	}
	out := slices.Grow(dst, total)
	start := len(out)
	var nonce [nonceSize]byte
	var aad [8 + frameHeaderSize]byte
	it := frameIter{b: blob[h.size():], frameSize: h.frameSize}
	for !it.done {
		seq, fh, sealed, _, err := it.next()
		if err == nil {
			var opened []byte
			opened, err = mk.aead.Open(out, mk.frameNonce(&nonce, seq), sealed, frameAAD(&aad, seq, fh))
			if err != nil {
				err = fmt.Errorf("%w: frame %d", ErrAuthentication, seq)
			} else {
				out = opened
			}
		}
		if err != nil {
			clear(out[start:cap(out)])
			return nil, err
		}
	}
	return out, nil
}

// openMessage gets a parsed message's data key and derives its keys, and
// checks the key commitment and the header tag.
func (c *Crypter) openMessage(ctx context.Context, h *header, tenant string, ec map[string]string, ecb []byte) (*messageKeys, error) {
	var dk [DataKeySize]byte
	if err := c.decryptionKey(ctx, &dk, tenant, h.wrapped, ec, ecb); err != nil {
		return nil, err
	}
	mk, err := deriveKeys(&dk, h.msgID)
	clear(dk[:])
	if err != nil {
		return nil, err
	}
	if err := mk.verifyHeader(h); err != nil {
		return nil, err
	}
	return mk, nil
}

// encryptionKey puts into dk a data key of keyID for ec good for one
// message of n bytes (n unknown: !known) and returns its wrapped form.
func (c *Crypter) encryptionKey(ctx context.Context, dk *[DataKeySize]byte, keyID, tenant string, ec map[string]string, ecb []byte, n uint64, known bool) ([]byte, error) {
	if keyID == "" {
		return nil, errors.New("envelope: no key id")
	}
	if c.cache != nil && (known || c.cache.bytesUnlimited()) {
		var kb [512]byte
		return c.cache.encryptionKey(ctx, dk, appendEncKey(kb[:0], c.partition, tenant, keyID, ecb), n,
			func(ctx context.Context) ([]byte, []byte, error) { return c.generate(ctx, keyID, ec) },
			func() func(context.Context) ([]byte, []byte, error) {
				ec := maps.Clone(ec)
				return func(ctx context.Context) ([]byte, []byte, error) { return c.generate(ctx, keyID, ec) }
			})
	}
	pt, wrapped, err := c.generate(ctx, keyID, ec)
	if err != nil {
		return nil, err
	}
	copy(dk[:], pt)
	clear(pt)
	return wrapped, nil
}

// generate asks the provider for a data key and checks its answer.
func (c *Crypter) generate(ctx context.Context, keyID string, ec map[string]string) ([]byte, []byte, error) {
	pt, wrapped, err := c.provider.GenerateDataKey(ctx, keyID, ec)
	if err != nil {
		clear(pt)
		return nil, nil, fmt.Errorf("envelope: generate data key: %w", err)
	}
	if len(pt) != DataKeySize || len(wrapped) == 0 || len(wrapped) > MaxWrappedKeySize {
		clear(pt)
		return nil, nil, fmt.Errorf("envelope: provider answered a data key of %d bytes, wrapped %d bytes", len(pt), len(wrapped))
	}
	return pt, wrapped, nil
}

// decryptionKey puts into dk the data key that wrapped unwraps to under ec.
func (c *Crypter) decryptionKey(ctx context.Context, dk *[DataKeySize]byte, tenant string, wrapped []byte, ec map[string]string, ecb []byte) error {
	if c.cache != nil {
		var kb [512]byte
		return c.cache.decryptionKey(ctx, dk, appendDecKey(kb[:0], c.partition, tenant, wrapped, ecb),
			func(ctx context.Context) ([]byte, error) { return c.unwrap(ctx, wrapped, ec) },
			func() func(context.Context) ([]byte, error) {
				wrapped, ec := bytes.Clone(wrapped), maps.Clone(ec)
				return func(ctx context.Context) ([]byte, error) { return c.unwrap(ctx, wrapped, ec) }
			})
	}
	pt, err := c.unwrap(ctx, wrapped, ec)
	if err != nil {
		return err
	}
	copy(dk[:], pt)
	clear(pt)
	return nil
}

// unwrap asks the provider to unwrap a data key and checks its answer.
func (c *Crypter) unwrap(ctx context.Context, wrapped []byte, ec map[string]string) ([]byte, error) {
	pt, err := c.provider.DecryptDataKey(ctx, wrapped, ec)
	if err != nil {
		clear(pt)
		return nil, fmt.Errorf("envelope: decrypt data key: %w", err)
	}
	if len(pt) != DataKeySize {
		clear(pt)
		return nil, fmt.Errorf("envelope: provider answered a data key of %d bytes", len(pt))
	}
	return pt, nil
}
