package hooksig_test

import (
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/hooksig"
)

// TestSignVerify: a signature verifies under its secret and body only,
// within the tolerance.
func TestSignVerify(t *testing.T) {
	secret, body := []byte("whsec_test"), []byte(`{"id":"evt_1"}`)
	at := time.Unix(1_800_000_000, 0)
	h := hooksig.Sign(secret, at, body)
	if err := hooksig.Verify(secret, h, body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("own signature: %v", err)
	}
	for name, c := range map[string]struct {
		secret, body []byte
		header       string
		now          time.Time
	}{
		"other secret": {[]byte("whsec_other"), body, h, at},
		"other body":   {secret, []byte(`{"id":"evt_2"}`), h, at},
		"stale":        {secret, body, h, at.Add(time.Hour)},
		"empty":        {secret, body, "", at},
		"garbage":      {secret, body, "t=x,v1=zz", at},
	} {
		if err := hooksig.Verify(c.secret, c.header, c.body, c.now, 5*time.Minute); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}
