package logging

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
)

// BufferSize is what a Buffer holds before it writes: PIPE_BUF on Linux,
// the most that one write to a pipe puts down whole, so that buffered
// lines never interleave with another writer's on the same stderr.
const BufferSize = 4096

// FlushEvery is how long a line waits in a Buffer at most.
const FlushEvery = time.Second

// Buffer holds log lines and writes them together: the gateway's access
// log wrote one line per request, a write system call each, which cost
// as much CPU as a tenth of the request (nginx's access_log has buffer=
// and flush= for the same reason). It takes the whole lines a slog
// handler writes (one Write per record) and writes only whole lines, at
// most BufferSize bytes at a time, when the next line would not fit, at
// Run's tick, and when Run returns. A line longer than BufferSize is
// written at once, after those held.
type Buffer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewBuffer returns a Buffer in front of w.
func NewBuffer(w io.Writer) *Buffer {
	return &Buffer{w: w, buf: make([]byte, 0, BufferSize)}
}

// Write holds line p, writing the lines held first if it would not fit.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > BufferSize {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) > BufferSize {
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Flush writes the lines held.
func (b *Buffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *Buffer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0] // a failed write loses its lines, as an unbuffered one would
	return err
}

// Run writes the lines held every FlushEvery until ctx ends, then once
// more. Lines written after it returns wait for a Flush.
func (b *Buffer) Run(ctx context.Context, clk clock.Clock) error {
	t, tick := clk.NewTicker(FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.Flush()
			return nil
		case <-tick:
			b.Flush()
		}
	}
}
