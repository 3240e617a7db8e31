package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// migratePoll is how often tenant migrate reads the migration's progress.
const migratePoll = 250 * time.Millisecond

// tenantMigrate runs bulkhead tenant migrate: it starts a tier migration
// and, unless --no-wait, follows it to its end with a progress bar on
// stderr (one line, redrawn; a line per step when stderr is not a
// terminal), then prints the migration. A migration that fails or is
// cancelled exits non-zero.
func tenantMigrate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("tenant migrate", tenantUsage)
	tier := fs.String("tier", "", "the tier to move the tenant to (required)")
	noWait := fs.Bool("no-wait", false, "start the migration and print it, without following it")
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if *tier == "" {
		return fmt.Errorf("%w: tenant migrate needs --tier", errUsage)
	}
	m, err := c.StartMigration(ctx, pos[0], *tier)
	if err != nil {
		return err
	}
	if !*noWait {
		bar := progressBar{w: s.err, live: isTerminal(s.err)}
		for m.Status == "running" {
			bar.show(m)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(migratePoll):
			}
			if m, err = c.GetMigration(ctx, m.TenantID, m.ID); err != nil {
				return err
			}
		}
		bar.show(m)
		bar.end()
	}
	if cf.output == "json" {
		if err := printJSON(s.out, m); err != nil {
			return err
		}
	} else {
		printMigration(s.out, m)
	}
	if m.Status == "failed" || m.Status == "cancelled" {
		return errSilent
	}
	return nil
}

// progressBar draws a migration's progress.
type progressBar struct {
	w    io.Writer
	live bool   // redraw one line (a terminal)
	last string // the line drawn last
}

func (b *progressBar) show(m client.TenantMigration) {
	line := progressLine(m)
	if line == b.last {
		return
	}
	b.last = line
	if b.live {
		fmt.Fprintf(b.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(b.w, line)
	}
}

func (b *progressBar) end() {
	if b.live && b.last != "" {
		fmt.Fprintln(b.w)
	}
}

// progressLine is "[#####.....] 52% copying 5,200/10,000 rows, lag 12
// (step data-copy)".
func progressLine(m client.TenantMigration) string {
	const width = 30
	frac := 0.0
	what := m.Status
	if d := m.Data; d != nil {
		if d.RowsTotal > 0 {
			frac = min(1, float64(d.RowsCopied)/float64(d.RowsTotal))
		}
		what = fmt.Sprintf("%s %d/%d rows, lag %d", d.Status, d.RowsCopied, d.RowsTotal, d.Lag)
		if d.WritePauseMS != "" {
			what += ", writes paused " + d.WritePauseMS + " ms"
		}
	}
	if m.Status != "running" {
		frac = 1
		if m.Status != "done" {
			frac = 0
		}
	}
	n := int(frac * width)
	line := fmt.Sprintf("[%s%s] %3.0f%% %s → %s: %s", strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, m.FromTier, m.ToTier, what)
	if m.Step != "" {
		line += " (step " + m.Step + ")"
	}
	if m.LastError != "" {
		line += " — last error: " + m.LastError
	}
	return line
}

func printMigration(w io.Writer, m client.TenantMigration) {
	fmt.Fprintf(w, "migration %s of %s: %s → %s (%s → %s): %s\n", m.ID, m.TenantID, m.FromTier, m.ToTier, m.FromIsolation, m.ToIsolation, m.Status)
	if d := m.Data; d != nil {
		fmt.Fprintf(w, "data: %s, %d rows copied, writes paused %s ms\n", d.Status, d.RowsCopied, d.WritePauseMS)
		if !d.SourceRetainedUntil.IsZero() {
			fmt.Fprintf(w, "the %s copy is retained until %s\n", d.From, d.SourceRetainedUntil.Format(time.RFC3339))
		}
		if d.Error != "" {
			fmt.Fprintf(w, "error: %s\n", d.Error)
		}
	}
	if m.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", m.LastError)
	}
}

// isTerminal reports whether w is a character device (a terminal): the
// progress bar redraws its line there only.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
