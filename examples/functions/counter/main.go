//go:build wasip1

// Command counter is the example function of README's walkthrough and of
// the isolation tests: every invocation increments a counter held in a
// global, writes a file named after the current tenant in /tmp, and
// answers {"count":N,"tenant_id":"…","tmp_seen":[…]} where tmp_seen lists
// the tenants whose files it found there. In a per-tenant environment
// tmp_seen only ever names the caller's tenant.
package main

import (
	"encoding/json"
	"os"
	"sort"
	"strings"

	"github.com/bulkhead-dev/bulkhead/examples/functions/guest"
)

var count int

func init() {
	guest.Serve(func(ctx guest.Context, event []byte) ([]byte, error) {
		count++
		seen := []string{}
		if entries, err := os.ReadDir("/tmp"); err == nil {
			for _, e := range entries {
				if t, ok := strings.CutPrefix(e.Name(), "tenant-"); ok {
					seen = append(seen, t)
				}
			}
		}
		sort.Strings(seen)
		if err := os.WriteFile("/tmp/tenant-"+ctx.TenantID, event, 0o600); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"count": count, "tenant_id": ctx.TenantID, "tmp_seen": seen})
	})
}

func main() {}
