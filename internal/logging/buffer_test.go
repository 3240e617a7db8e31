package logging_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/logging"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

// writes records each Write it gets.
type writes struct {
	mu sync.Mutex
	w  []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.w = append(w.w, string(p))
	return len(p), nil
}

func (w *writes) get() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.w...)
}

// TestBufferWritesWholeLinesTogether: lines wait for the tick, the next
// line that would not fit, or the end of Run; every write holds whole
// lines and at most BufferSize bytes, except a longer line alone.
func TestBufferWritesWholeLinesTogether(t *testing.T) {
	out := &writes{}
	b := logging.NewBuffer(out)
	clk := clock.NewFake(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	stop := runtest.Go(t, func(ctx context.Context) error { return b.Run(ctx, clk) })
	line := strings.Repeat("x", 99) + "\n"
	for range 3 {
		b.Write([]byte(line))
	}
	if got := out.get(); len(got) != 0 {
		t.Fatalf("written before the tick: %q", got)
	}
	runtest.Eventually(t, "the ticker", func() bool { return clk.Pending() > 0 })
	clk.Advance(logging.FlushEvery)
	runtest.Eventually(t, "the lines written at the tick", func() bool { return len(out.get()) == 1 })
	if got := out.get()[0]; got != strings.Repeat(line, 3) {
		t.Errorf("tick wrote %q", got)
	}

	// 41 lines of 100 bytes: 40 fit in 4096, the 41st makes them go.
	for range 41 {
		b.Write([]byte(line))
	}
	got := out.get()
	if len(got) != 2 || got[1] != strings.Repeat(line, 40) {
		t.Fatalf("after 41 lines: %d writes, last %d bytes", len(got), len(got[len(got)-1]))
	}
	long := strings.Repeat("y", logging.BufferSize+10) + "\n"
	b.Write([]byte(long))
	got = out.get()
	if len(got) != 4 || got[2] != line || got[3] != long {
		t.Fatalf("a long line: writes %d", len(got))
	}
	b.Write([]byte(line))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got = out.get()
	if len(got) != 5 || got[4] != line {
		t.Fatalf("Run's end did not write the last line: %d writes", len(got))
	}
	for i, w := range got {
		if len(w) > logging.BufferSize && w != long || !strings.HasSuffix(w, "\n") || bytes.Count([]byte(w), []byte("\n"))*100 != len(w) && w != long {
			t.Errorf("write %d is not whole lines within BufferSize: %d bytes", i, len(w))
		}
	}
}
