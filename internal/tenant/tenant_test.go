package tenant_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

func TestParseIDError(t *testing.T) {
	if _, err := tenant.ParseID("-x-"); !errors.Is(err, tenant.ErrInvalidID) {
		t.Fatalf("ParseID(-x-) = %v; want ErrInvalidID", err)
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"abc", "a-b", "", "-x-", "Ab9", strings.Repeat("z", 70), "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := tenant.ParseID(s)
		if err != nil {
			return
		}
		if string(id) != s || len(s) < 3 || len(s) > 63 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" ||
			s[0] == '-' || s[len(s)-1] == '-' {
			t.Fatalf("ParseID accepted %q", s)
		}
	})
}
