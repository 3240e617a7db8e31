package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Format constants (see the package documentation).
const (
	// Version1 is the first byte of every message of this format.
	Version1 byte = 0xB1
	// AlgAES256GCMHKDF is the algorithm id of version 1: AES-256-GCM
	// frames under a per-message key derived with HKDF-SHA256 from a
	// 32-byte data key and the message id, with a key commitment.
	AlgAES256GCMHKDF byte = 0x01

	// DataKeySize is the size of a data key (AES-256).
	DataKeySize = 32
	// MessageIDSize is the size of the random message id (the HKDF salt).
	MessageIDSize = 32
	// DefaultFrameSize is the plaintext size of a frame unless
	// Config.FrameSize says otherwise.
	DefaultFrameSize = 64 << 10
	// MinFrameSize and MaxFrameSize bound a frame's plaintext size.
	MinFrameSize = 64
	MaxFrameSize = 16 << 20
	// MaxContextSize bounds an encryption context's canonical encoding.
	MaxContextSize = 8 << 10
	// MaxWrappedKeySize bounds a wrapped data key.
	MaxWrappedKeySize = 4 << 10
	// TenantKey is the encryption-context key every context must hold.
	TenantKey = "tenant_id"

	commitSize      = 32
	tagSize         = 16
	nonceSize       = 12
	fixedHeaderSize = 1 + 1 + MessageIDSize + 4 + 2 // version … context length
	frameHeaderSize = 1 + 4                         // flag, plaintext length
	frameOverhead   = frameHeaderSize + tagSize
	maxFrames       = 1<<32 - 1

	flagRegular byte = 0x00
	flagFinal   byte = 0x01
)

// Errors of Decrypt and of the decrypting reader; match with errors.Is.
var (
	// ErrMalformed: the input is not a message of this format (or of a
	// version or algorithm this package does not know).
	ErrMalformed = errors.New("envelope: malformed message")
	// ErrTruncated: the message ends before its final frame.
	ErrTruncated = errors.New("envelope: message truncated")
	// ErrAuthentication: the message does not authenticate under its data
	// key: it was modified, frames were reordered or dropped, or the
	// data key is not the one it was made with.
	ErrAuthentication = errors.New("envelope: message authentication failed")
	// ErrContextMismatch: the encryption context given to decrypt is not
	// the one the message was encrypted with.
	ErrContextMismatch = errors.New("envelope: encryption context mismatch")
	// ErrInvalidContext: an encryption context without a tenant_id, or not
	// encodable (see encodeContext).
	ErrInvalidContext = errors.New("envelope: invalid encryption context")
)

// errNeedMore is parseHeader's and parseFrame's answer to a prefix that
// is too short to go on; the int beside it is the length needed.
var errNeedMore = errors.New("envelope: need more input")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// appendContext validates an encryption context and appends its
// canonical encoding to dst; it returns the encoding and the tenant id. A
// context must hold a non-empty tenant_id; keys are non-empty; keys and
// values are valid UTF-8 (the KMS takes them as JSON strings); the
// encoding is at most MaxContextSize bytes.
//
// Encoding: pair count (uint16), then for each pair in ascending byte
// order of keys: key length (uint16), key, value length (uint16), value.
func appendContext(dst []byte, ec map[string]string) ([]byte, string, error) {
	tenant := ec[TenantKey]
	if tenant == "" {
		return nil, "", fmt.Errorf("%w: no %s", ErrInvalidContext, TenantKey)
	}
	size := 2
	var small [16]string
	keys := small[:0]
	for k, v := range ec {
		if k == "" {
			return nil, "", fmt.Errorf("%w: empty key", ErrInvalidContext)
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, "", fmt.Errorf("%w: key or value of %q is not UTF-8", ErrInvalidContext, k)
		}
		size += 4 + len(k) + len(v)
		if size > MaxContextSize {
			return nil, "", fmt.Errorf("%w: more than %d bytes", ErrInvalidContext, MaxContextSize)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := slices.Grow(dst, size)
	b = binary.BigEndian.AppendUint16(b, uint16(len(keys)))
	for _, k := range keys {
		b = appendString16(b, k)
		b = appendString16(b, ec[k])
	}
	return b, tenant, nil
}

// encodeContext is appendContext to a new slice.
func encodeContext(ec map[string]string) ([]byte, string, error) { return appendContext(nil, ec) }

func appendString16(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// checkContext checks that b is a canonical context encoding (sorted,
// distinct, non-empty keys; UTF-8; a non-empty tenant_id; nothing after
// the last pair) without decoding it.
func checkContext(b []byte) error {
	if len(b) < 2 {
		return malformed("encryption context too short")
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > len(b)/4 {
		return malformed("encryption context: %d pairs in %d bytes", n, len(b))
	}
	var prev []byte
	tenant := false
	for i := range n {
		k, rest, ok := cut16(b)
		if !ok {
			return malformed("encryption context: pair %d truncated", i)
		}
		v, rest, ok := cut16(rest)
		if !ok {
			return malformed("encryption context: pair %d truncated", i)
		}
		b = rest
		if len(k) == 0 || (i > 0 && bytes.Compare(k, prev) <= 0) {
			return malformed("encryption context: keys not in canonical order")
		}
		if !utf8.Valid(k) || !utf8.Valid(v) {
			return malformed("encryption context: not UTF-8")
		}
		if string(k) == TenantKey && len(v) > 0 {
			tenant = true
		}
		prev = k
	}
	if len(b) != 0 {
		return malformed("encryption context: %d trailing bytes", len(b))
	}
	if !tenant {
		return malformed("encryption context without %s", TenantKey)
	}
	return nil
}

// cut16 cuts a uint16-length-prefixed field off b.
func cut16(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return nil, nil, false
	}
	return b[2 : 2+n], b[2+n:], true
}

// header is a parsed message header. Its slices alias the parsed input.
type header struct {
	alg       byte
	msgID     []byte // MessageIDSize bytes
	frameSize int
	context   []byte // canonical encoding
	wrapped   []byte // the wrapped data key
	commit    []byte // key commitment
	authed    []byte // the header bytes the tag authenticates (all before it)
	tag       []byte
}

// size is the header's encoded length.
func (h *header) size() int { return len(h.authed) + tagSize }

// appendHeader appends the authenticated part of a header (everything but
// the tag) for the given fields.
func appendHeader(b []byte, alg byte, msgID []byte, frameSize int, context, wrapped, commit []byte) []byte {
	b = append(b, Version1, alg)
	b = append(b, msgID...)
	b = binary.BigEndian.AppendUint32(b, uint32(frameSize))
	b = binary.BigEndian.AppendUint16(b, uint16(len(context)))
	b = append(b, context...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(wrapped)))
	b = append(b, wrapped...)
	return append(b, commit...)
}

// headerSize is the encoded length of a header with these fields.
func headerSize(context, wrapped []byte) int {
	return fixedHeaderSize + len(context) + 2 + len(wrapped) + commitSize + tagSize
}

// parseHeader parses the header at the start of b into h. It returns the
// header's length; or errNeedMore and the length it needs to go on when b
// is a valid but incomplete prefix; or an error wrapping ErrMalformed. It
// checks the structure only: the tag is checked once the data key is known.
func parseHeader(b []byte, h *header) (int, error) {
	if len(b) >= 1 && b[0] != Version1 {
		return 0, malformed("unknown version 0x%02x", b[0])
	}
	if len(b) >= 2 && b[1] != AlgAES256GCMHKDF {
		return 0, malformed("unknown algorithm 0x%02x", b[1])
	}
	if len(b) < fixedHeaderSize {
		return fixedHeaderSize, errNeedMore
	}
	off := 2 + MessageIDSize
	fs := binary.BigEndian.Uint32(b[off:])
	if fs < MinFrameSize || fs > MaxFrameSize {
		return 0, malformed("frame size %d out of range", fs)
	}
	ecLen := int(binary.BigEndian.Uint16(b[off+4:]))
	off = fixedHeaderSize
	if ecLen < 2 || ecLen > MaxContextSize {
		return 0, malformed("encryption context length %d out of range", ecLen)
	}
	if len(b) < off+ecLen+2 {
		return off + ecLen + 2, errNeedMore
	}
	context := b[off : off+ecLen]
	if err := checkContext(context); err != nil {
		return 0, err
	}
	off += ecLen
	wLen := int(binary.BigEndian.Uint16(b[off:]))
	off += 2
	if wLen < 1 || wLen > MaxWrappedKeySize {
		return 0, malformed("wrapped key length %d out of range", wLen)
	}
	end := off + wLen + commitSize + tagSize
	if len(b) < end {
		return end, errNeedMore
	}
	*h = header{
		alg:       b[1],
		msgID:     b[2 : 2+MessageIDSize],
		frameSize: int(fs),
		context:   context,
		wrapped:   b[off : off+wLen],
		commit:    b[off+wLen : off+wLen+commitSize],
		authed:    b[:off+wLen+commitSize],
		tag:       b[off+wLen+commitSize : end],
	}
	return end, nil
}

// parseFrameHeader checks a frame header (flag, plaintext length) against
// the frame size and returns whether the frame is final and its plaintext
// length.
func parseFrameHeader(b []byte, frameSize int) (final bool, n int, err error) {
	flag, l := b[0], binary.BigEndian.Uint32(b[1:frameHeaderSize])
	switch {
	case flag == flagRegular && l == uint32(frameSize):
		return false, frameSize, nil
	case flag == flagRegular:
		return false, 0, malformed("regular frame of %d bytes, frame size %d", l, frameSize)
	case flag == flagFinal && l <= uint32(frameSize):
		return true, int(l), nil
	case flag == flagFinal:
		return false, 0, malformed("final frame of %d bytes, frame size %d", l, frameSize)
	default:
		return false, 0, malformed("unknown frame flag 0x%02x", flag)
	}
}

// frameIter walks the frames of a message body (what follows the
// header): regular frames of the frame size, then one final frame, then
// nothing.
type frameIter struct {
	b         []byte
	frameSize int
	seq       uint64 // of the frame next returned last
	done      bool
}

// next returns the next frame's sequence number (from 1), its 5-byte
// header, its sealed bytes and whether it is the final one; after the
// final frame it reports done. A final frame is returned only if nothing
// follows it.
func (it *frameIter) next() (seq uint64, fh, sealed []byte, final bool, err error) {
	if it.seq == maxFrames {
		return 0, nil, nil, false, malformed("more than %d frames", uint64(maxFrames))
	}
	if len(it.b) < frameHeaderSize {
		return 0, nil, nil, false, ErrTruncated
	}
	final, n, err := parseFrameHeader(it.b, it.frameSize)
	if err != nil {
		return 0, nil, nil, false, err
	}
	if len(it.b)-frameHeaderSize < n+tagSize {
		return 0, nil, nil, false, ErrTruncated
	}
	end := frameHeaderSize + n + tagSize
	fh, sealed = it.b[:frameHeaderSize], it.b[frameHeaderSize:end]
	it.b = it.b[end:]
	if final && len(it.b) != 0 {
		return 0, nil, nil, false, malformed("%d bytes after the final frame", len(it.b))
	}
	it.seq++
	it.done = final
	return it.seq, fh, sealed, final, nil
}

// walkFrames checks the frame structure of a message body and returns its
// plaintext size.
func walkFrames(b []byte, frameSize int) (int, error) {
	it := frameIter{b: b, frameSize: frameSize}
	total := 0
	for !it.done {
		_, _, sealed, _, err := it.next()
		if err != nil {
			return 0, err
		}
		total += len(sealed) - tagSize
	}
	return total, nil
}

// parseBlob checks the structure of a whole message, its header and its
// frames, parses the header into h and returns the plaintext size.
func parseBlob(b []byte, h *header) (int, error) {
	n, err := parseHeader(b, h)
	if errors.Is(err, errNeedMore) {
		return 0, ErrTruncated
	}
	if err != nil {
		return 0, err
	}
	return walkFrames(b[n:], h.frameSize)
}

// frameAAD is a frame's additional data: its sequence number (uint64)
// and its header (flag, plaintext length).
func frameAAD(aad *[8 + frameHeaderSize]byte, seq uint64, fh []byte) []byte {
	binary.BigEndian.PutUint64(aad[:8], seq)
	copy(aad[8:], fh)
	return aad[:]
}

// putFrameHeader writes a frame header into fh (5 bytes).
func putFrameHeader(fh []byte, final bool, n int) {
	fh[0] = flagRegular
	if final {
		fh[0] = flagFinal
	}
	binary.BigEndian.PutUint32(fh[1:frameHeaderSize], uint32(n))
}
