package identity

import (
	"strings"
	"testing"
)

// fast keeps the tests quick; the parameters travel with each hash.
var fast = Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func TestHashAndVerify(t *testing.T) {
	h := HashPassword("correct horse battery staple", fast)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q does not record its parameters", h)
	}
	if !VerifyPassword(h, "correct horse battery staple") {
		t.Fatal("the right password does not verify")
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple"} {
		if VerifyPassword(h, wrong) {
			t.Errorf("%q verified", wrong)
		}
	}
	if h2 := HashPassword("correct horse battery staple", fast); h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	d := HashPassword("x", DefaultArgon2)
	if !strings.HasPrefix(d, "$argon2id$v=19$m=65536,t=3,p=1$") || !VerifyPassword(d, "x") {
		t.Errorf("default parameters: %q", d)
	}
}

func TestMalformedHashesNeverVerify(t *testing.T) {
	good := HashPassword("pw", fast)
	parts := strings.Split(good, "$")
	for _, bad := range []string{
		"", "$", "plain", "$argon2i$v=19$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=18$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=4294967295,t=1,p=1$" + parts[4] + "$" + parts[5], // memory bomb
		"$argon2id$v=19$m=64,t=1000000,p=1$" + parts[4] + "$" + parts[5],   // time bomb
		"$argon2id$v=19$m=64,t=1,p=0$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1,x=2$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$" + parts[4] + "$",
		"$argon2id$v=19$m=64,t=1,p=1$" + parts[4] + "$" + parts[5] + "$extra",
		"$argon2id$v=19$m=064,t=1,p=1$" + parts[4] + "$" + parts[5],
	} {
		if VerifyPassword(bad, "pw") {
			t.Errorf("malformed hash %q verified", bad)
		}
	}
}

func FuzzVerifyPassword(f *testing.F) {
	f.Add(HashPassword("pw", fast), "pw")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "x")
	f.Add("$argon2id$v=19$m=9999999,t=99,p=255$AAAA$AAAA", "")
	f.Fuzz(func(t *testing.T, encoded, password string) {
		if p, _, _, err := parseHash(encoded); err == nil && (p.Memory > maxArgonMemory || p.Time > maxArgonTime) {
			t.Fatalf("parseHash accepted costly parameters %+v", p)
		}
		VerifyPassword(encoded, password) // must not panic
	})
}

func TestPasswordPolicy(t *testing.T) {
	pp := PasswordPolicy{MinLength: 12}
	for pw, ok := range map[string]bool{
		"short":                      false,
		"twelve chars":               true,
		"Password1234":               false, // common, case-folded
		"ann@example.com":            false, // the email
		strings.Repeat("é", 12):      true,  // counted in characters
		strings.Repeat("a", 257):     false,
		"valid but \xff invalid utf": false,
	} {
		err := pp.Check(pw, "Ann@Example.com")
		if (err == nil) != ok {
			t.Errorf("Check(%q) = %v; want ok=%v", pw, err, ok)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("the error echoes the password: %v", err)
		}
	}
	if got := NewTemporaryPassword(); len(got) != 24 || pp.Check(got, "") != nil {
		t.Errorf("temporary password %q", got)
	}
}
