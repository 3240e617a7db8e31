package data

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

func TestName(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, c := range []struct {
		prefix, id, want string
	}{
		{"t_", "acme", "t_acme"},
		{"t_", "acme-co", "t_acme_co"},
		{"t_", "a--b", "t_a__b"},
		{"app_data", "x1-y2", "app_datax1_y2"},
		{"t_", strings.Repeat("a", 60), "t_" + strings.Repeat("a", 60)},   // 62 bytes: plain
		{"t_", strings.Repeat("a", 61), "t_" + strings.Repeat("a", 61)},   // 63 bytes: plain
		{"t_", long, "t_" + strings.Repeat("a", 50) + "_" + hash10(long)}, // 65 bytes: shortened
	} {
		got := Name(c.prefix, tenant.ID(c.id))
		if got != c.want {
			t.Errorf("Name(%q, %q) = %q; want %q", c.prefix, c.id, got, c.want)
		}
		if len(got) > maxIdentifier {
			t.Errorf("Name(%q, %q) = %q: %d bytes", c.prefix, c.id, got, len(got))
		}
	}
}

func hash10(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// TestNameCraftedCollision is the attacker's attempt: a tenant id chosen
// so that its plain name spells another tenant's shortened name. It does
// not meet it.
func TestNameCraftedCollision(t *testing.T) {
	victim := tenant.ID(strings.Repeat("b", 40) + "-" + strings.Repeat("c", 22))
	short := Name("t_", victim)
	if len(short) != maxIdentifier || !hashedTail.MatchString(short) {
		t.Fatalf("victim's name %q is not shortened", short)
	}
	// t_ + 50 characters + _ + 10 hex: the id that spells it is 61
	// characters, the hash tail written with '-'.
	crafted := tenant.ID(strings.ReplaceAll(strings.TrimPrefix(short, "t_"), "_", "-"))
	if _, err := tenant.ParseID(string(crafted)); err != nil {
		t.Fatalf("crafted id %q is not a tenant id: %v", crafted, err)
	}
	if got := Name("t_", crafted); got == short {
		t.Fatalf("crafted tenant %q gets the victim's name %q", crafted, got)
	}
}

func TestValidClusterNameAndPrefix(t *testing.T) {
	for _, n := range []string{"app", "a", "app-2", "a" + strings.Repeat("b", 30)} {
		if err := validClusterName("name", n); err != nil {
			t.Errorf("cluster name %q refused: %v", n, err)
		}
	}
	for _, n := range []string{"", "App", "1app", "-app", "app_x", "a" + strings.Repeat("b", 31), `app"; DROP DATABASE x; --`, "app\x00", "ápp"} {
		if err := validClusterName("name", n); err == nil {
			t.Errorf("cluster name %q accepted", n)
		}
	}
	for _, p := range []string{"t_", "t", "app_data_", "x0123456789_abc"} {
		if err := validPrefix(p); err != nil {
			t.Errorf("prefix %q refused: %v", p, err)
		}
	}
	for _, p := range []string{"", "T_", "_t", "1t", "t-", `t"`, "t_; DROP ROLE x", "a" + strings.Repeat("b", 16), "t\n"} {
		if err := validPrefix(p); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}

var identifierChars = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// FuzzName checks, for any valid prefix and tenant id, that the name is
// a plain lower-case identifier within PostgreSQL's limit that begins with
// the prefix, and that two ids never share one unless 40 bits of SHA-256
// meet (the fuzzer gives it two ids at a time).
func FuzzName(f *testing.F) {
	f.Add("t_", "acme", "acme-co")
	f.Add("t_", strings.Repeat("a", 61), strings.Repeat("a", 62))
	f.Add("x0123456789_", strings.Repeat("ab-", 20)+"z", strings.Repeat("ab-", 20)+"y")
	f.Add("p", "a-b", "a--b")
	f.Add("t_", strings.Repeat("b", 40)+"-"+strings.Repeat("c", 22), strings.Repeat("b", 50)+"-0123456789")
	f.Fuzz(func(t *testing.T, prefix, a, b string) {
		if validPrefix(prefix) != nil {
			return
		}
		ida, erra := tenant.ParseID(a)
		idb, errb := tenant.ParseID(b)
		if erra != nil || errb != nil {
			return
		}
		na, nb := Name(prefix, ida), Name(prefix, idb)
		for _, n := range []string{na, nb} {
			if len(n) > maxIdentifier || !strings.HasPrefix(n, prefix) || !identifierChars.MatchString(n) {
				t.Fatalf("Name(%q, …) = %q: not a valid name", prefix, n)
			}
		}
		if ida != idb && na == nb {
			if len(na) == maxIdentifier && hashedTail.MatchString(na) && hash10(a) == hash10(b) {
				return // 40 bits of SHA-256 met: the unique index refuses it
			}
			t.Fatalf("%q and %q share the name %q", a, b, na)
		}
	})
}
