package ids

import "testing"

func TestNewAndValid(t *testing.T) {
	id := New("usr")
	if !Valid(id, "usr") || Valid(id, "grp") || New("usr") == id {
		t.Fatalf("New/Valid: %q", id)
	}
	for _, bad := range []string{"", "usr_", "usr_short", "usr_" + "A234567abcdefghijklmnopqrs", "usr_abcdefghijklmnopqrstuvwxyz0", "usr_abcdefghijklmnopqrstuvwx\x00z"} {
		if Valid(bad, "usr") {
			t.Errorf("Valid(%q)", bad)
		}
	}
	if s := Secret("bha"); len(s) != 4+43 || !HasPrefix(s, "bha") {
		t.Errorf("Secret: %q", s)
	}
}
