package envelope

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// NewEncryptWriter returns a writer that encrypts what is written to it
// into a message on w, under a data key of keyID (a key id or alias) with
// the encryption context ec, which must hold the caller's tenant_id. It
// writes the header to w before it returns, and a frame whenever a frame's
// worth of plaintext is buffered and more arrives. Close writes the final
// frame; without it the message is truncated and does not decrypt. Close
// does not close w.
//
// The message's length is not known when it starts, so it gets a data key
// of its own unless the Cache has no byte limit (CacheConfig.MaxBytes).
func (c *Crypter) NewEncryptWriter(ctx context.Context, w io.Writer, keyID string, ec map[string]string) (io.WriteCloser, error) {
	ecb, tenant, err := encodeContext(ec)
	if err != nil {
		return nil, err
	}
	var dk [DataKeySize]byte
	wrapped, err := c.encryptionKey(ctx, &dk, keyID, tenant, ec, ecb, 0, false)
	if err != nil {
		return nil, err
	}
	var nonce [nonceSize]byte
	hdr, mk, err := c.newMessage(make([]byte, 0, headerSize(ecb, wrapped)), &dk, ecb, wrapped, &nonce)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, err
	}
	return &encryptWriter{w: w, mk: mk, frameSize: c.frameSize, buf: make([]byte, frameOverhead+c.frameSize)}, nil
}

type encryptWriter struct {
	w         io.Writer
	mk        *messageKeys
	frameSize int
	buf       []byte // frame header, plaintext, room for the tag
	n         int    // plaintext bytes in buf
	seq       uint64 // frames written
	err       error  // sticky
}

var errClosed = errors.New("envelope: write after close")

func (ew *encryptWriter) Write(p []byte) (int, error) {
	if ew.err != nil {
		return 0, ew.err
	}
	written := 0
	for len(p) > 0 {
		if ew.n == ew.frameSize { // a full frame and more to come: it is not the final one
			if err := ew.flush(false); err != nil {
				return written, err
			}
		}
		k := copy(ew.buf[frameHeaderSize+ew.n:frameHeaderSize+ew.frameSize], p)
		ew.n += k
		written += k
		p = p[k:]
	}
	return written, nil
}

// flush seals the buffered plaintext in place as the next frame and writes it.
func (ew *encryptWriter) flush(final bool) error {
	if ew.seq == maxFrames {
		ew.fail(fmt.Errorf("envelope: more than %d frames", uint64(maxFrames)))
		return ew.err
	}
	ew.seq++
	fh := ew.buf[:frameHeaderSize]
	putFrameHeader(fh, final, ew.n)
	var nonce [nonceSize]byte
	var aad [8 + frameHeaderSize]byte
	pt := ew.buf[frameHeaderSize : frameHeaderSize+ew.n]
	sealed := ew.mk.aead.Seal(pt[:0], ew.mk.frameNonce(&nonce, ew.seq), pt, frameAAD(&aad, ew.seq, fh))
	ew.n = 0
	if _, err := ew.w.Write(ew.buf[:frameHeaderSize+len(sealed)]); err != nil {
		ew.fail(err)
		return err
	}
	return nil
}

func (ew *encryptWriter) fail(err error) {
	ew.err = err
	clear(ew.buf)
	ew.mk = nil
}

// Close writes the final frame. Later writes fail; a second Close does
// nothing.
func (ew *encryptWriter) Close() error {
	if ew.err != nil {
		if ew.err == errClosed {
			return nil
		}
		return ew.err
	}
	err := ew.flush(true)
	if err == nil {
		ew.fail(errClosed)
	}
	return err
}

// NewDecryptReader returns a reader of the plaintext of the message read
// from r. ec must hold a tenant_id and equal the message's encryption
// context. It reads and checks the header before it returns. The reader
// releases a frame's plaintext only once the frame has authenticated (and,
// for the final frame, once r has ended), so it holds one frame in memory;
// a message that was truncated, or had frames dropped or reordered, ends
// in an error instead of io.EOF: treat what was read as incomplete until
// Read returns io.EOF. The message must be all of r: bytes after its final
// frame are an error.
func (c *Crypter) NewDecryptReader(ctx context.Context, r io.Reader, ec map[string]string) (io.Reader, error) {
	ecb, tenant, err := encodeContext(ec)
	if err != nil {
		return nil, err
	}
	var h header
	if err := readHeader(r, &h); err != nil {
		return nil, err
	}
	if !bytes.Equal(h.context, ecb) {
		return nil, ErrContextMismatch
	}
	mk, err := c.openMessage(ctx, &h, tenant, ec, ecb)
	if err != nil {
		return nil, err
	}
	return &decryptReader{r: r, mk: mk, frameSize: h.frameSize, buf: make([]byte, frameOverhead+h.frameSize)}, nil
}

// readHeader reads a message header from r into h, no more.
func readHeader(r io.Reader, h *header) error {
	buf := make([]byte, 0, 256)
	for {
		need, err := parseHeader(buf, h)
		if !errors.Is(err, errNeedMore) {
			return err
		}
		if cap(buf) < need {
			buf = append(make([]byte, 0, need), buf...)
		}
		k, err := io.ReadFull(r, buf[len(buf):need])
		buf = buf[:len(buf)+k]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if _, err := parseHeader(buf, h); !errors.Is(err, errNeedMore) {
				return err // what was read is not a header
			}
			return ErrTruncated
		}
		if err != nil {
			return err
		}
	}
}

type decryptReader struct {
	r         io.Reader
	mk        *messageKeys
	frameSize int
	buf       []byte
	out       []byte // authenticated plaintext not read yet (in buf)
	seq       uint64
	err       error // sticky; io.EOF after the final frame
}

func (dr *decryptReader) Read(p []byte) (int, error) {
	for len(dr.out) == 0 {
		if dr.err != nil {
			return 0, dr.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if err := dr.next(); err != nil {
			dr.err = err
			clear(dr.buf)
			dr.mk = nil
			dr.out = nil
		}
	}
	n := copy(p, dr.out)
	clear(dr.out[:n])
	dr.out = dr.out[n:]
	if len(dr.out) == 0 && dr.err == io.EOF {
		return n, io.EOF
	}
	return n, nil
}

// next reads, authenticates and decrypts the next frame into dr.out; after
// the final frame it sets dr.err to io.EOF.
func (dr *decryptReader) next() error {
	fh := dr.buf[:frameHeaderSize]
	if _, err := io.ReadFull(dr.r, fh); err != nil {
		return readErr(err)
	}
	final, n, err := parseFrameHeader(fh, dr.frameSize)
	if err != nil {
		return err
	}
	if dr.seq == maxFrames {
		return malformed("more than %d frames", uint64(maxFrames))
	}
	dr.seq++
	sealed := dr.buf[frameHeaderSize : frameHeaderSize+n+tagSize]
	if _, err := io.ReadFull(dr.r, sealed); err != nil {
		return readErr(err)
	}
	var nonce [nonceSize]byte
	var aad [8 + frameHeaderSize]byte
	pt, err := dr.mk.aead.Open(sealed[:0], dr.mk.frameNonce(&nonce, dr.seq), sealed, frameAAD(&aad, dr.seq, fh))
	if err != nil {
		return fmt.Errorf("%w: frame %d", ErrAuthentication, dr.seq)
	}
	if final {
		var one [1]byte
		k, err := io.ReadFull(dr.r, one[:])
		if k > 0 {
			return malformed("bytes after the final frame")
		}
		if err != io.EOF {
			return err
		}
		dr.err = io.EOF
	}
	dr.out = pt
	return nil
}

func readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return ErrTruncated
	}
	return err
}
