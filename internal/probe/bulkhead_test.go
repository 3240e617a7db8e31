package probe_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/probe"
	"github.com/bulkhead-dev/bulkhead/internal/probe/probetest"
)

// TestBulkheadHasNoFindings probes Bulkhead's own API, as the document it
// serves describes it, with two tenants' administrators: nothing found.
func TestBulkheadHasNoFindings(t *testing.T) {
	rep, err := probe.Run(t.Context(), probetest.Bulkhead(t))
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Log(text.String())
	if len(rep.Findings) != 0 || rep.Incomplete != "" {
		t.Fatalf("findings on Bulkhead's own API:\n%s", text.String())
	}
}
