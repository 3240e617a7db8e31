package auth_test

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/auth"
)

func TestCacheHit(t *testing.T) {
	e := newEnv(t)
	parses := auth.CountParses(t.Cleanup)
	tok := e.platform(e.es, "acme")
	c1, err := e.validate(tok)
	if err != nil {
		t.Fatal(err)
	}
	c1.Groups[0] = "root" // the caller's copy: must not reach the cache
	c1.TenantID = "globex"
	for range 10 {
		c2, err := e.validate(tok)
		if err != nil {
			t.Fatal(err)
		}
		if c2.Groups[0] != "admins" || c2.TenantID != "acme" {
			t.Fatalf("a caller's change reached the cache: %+v", c2)
		}
	}
	if n := parses.Load(); n != 1 {
		t.Errorf("11 validations of one token parsed it %d times, want 1", n)
	}
	// With the cache off every validation does the whole work.
	off := e.validator(func(c *auth.Config) { c.CacheSize = -1 })
	for range 3 {
		if _, err := off.Validate(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := parses.Load(); n != 4 {
		t.Errorf("cache off: parses = %d, want 4", n)
	}
	if auth.CacheLen(off) != 0 {
		t.Error("cache off holds entries")
	}
}

// TestCacheTags: a partner token's session tags are the caller's own, from
// the cache as from a first validation, with the cache on or off.
func TestCacheTags(t *testing.T) {
	e := newEnv(t)
	off := e.validator(func(c *auth.Config) { c.CacheSize = -1 })
	want := map[string]string{"partner": "prt_x", "trust": "trs_y", "region": "eu"}
	tok := e.es.Sign(with(e.claims(e.op.Issuer(), "acme"), "tags", want))
	for name, v := range map[string]*auth.Validator{"cache on": e.v, "cache off": off} {
		t.Run(name, func(t *testing.T) {
			var prev *auth.Claims
			for i := range 5 {
				c, err := v.Validate(t.Context(), tok)
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(c.Tags, want) {
					t.Fatalf("validation %d: a caller's change reached another's tags: %v", i, c.Tags)
				}
				if prev != nil && reflect.ValueOf(c.Tags).UnsafePointer() == reflect.ValueOf(prev.Tags).UnsafePointer() {
					t.Fatalf("validation %d shares its tags with the one before", i)
				}
				c.Tags["region"] = "us" // the caller's copy: must not reach the cache
				c.Tags["admin"] = "true"
				delete(c.Tags, "trust")
				prev = c
			}
		})
	}
	if n := auth.CacheLen(e.v); n != 1 {
		t.Errorf("cache holds %d entries, want 1", n)
	}
}

// TestCacheExpiry: a cached token still fails after its exp.
func TestCacheExpiry(t *testing.T) {
	e := newEnv(t)
	tok := e.es.Sign(with(e.claims(e.op.Issuer(), "acme"), "exp", e.clk.Now().Add(time.Minute).Unix()))
	if _, err := e.validate(tok); err != nil {
		t.Fatal(err)
	}
	if auth.CacheLen(e.v) != 1 {
		t.Fatal("token not cached")
	}
	e.clk.Add(time.Minute + 31*time.Second) // past exp and the leeway
	if _, err := e.validate(tok); !errors.Is(err, auth.ErrTokenExpired) {
		t.Errorf("cached token after exp: %v", err)
	}
	// Within the leeway after exp, the entry is not used (it expires at exp)
	// but the token is still accepted by a full validation, and not cached.
	tok2 := e.es.Sign(with(e.claims(e.op.Issuer(), "acme"), "exp", e.clk.Now().Add(time.Minute).Unix()))
	if _, err := e.validate(tok2); err != nil {
		t.Fatal(err)
	}
	parses := auth.CountParses(t.Cleanup)
	e.clk.Add(time.Minute + 10*time.Second)
	if _, err := e.validate(tok2); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	if parses.Load() != 1 {
		t.Error("a cache entry was used after its token's exp")
	}
}

// TestCacheBounded: the cache never holds more than its size, and evicts
// the oldest entries.
func TestCacheBounded(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) { c.CacheSize = 64 })
	toks := make([]string, 500)
	for i := range toks {
		toks[i] = e.es.Sign(with(e.claims(e.op.Issuer(), "acme"), "jti", fmt.Sprintf("tok_%d", i)))
		if _, err := e.validate(toks[i]); err != nil {
			t.Fatal(err)
		}
		if n := auth.CacheLen(e.v); n > 64 {
			t.Fatalf("cache holds %d entries, size 64", n)
		}
	}
	if n := auth.CacheLen(e.v); n < 32 {
		t.Errorf("cache holds only %d of 64 entries", n)
	}
	parses := auth.CountParses(t.Cleanup)
	if _, err := e.validate(toks[0]); err != nil { // evicted long ago
		t.Fatal(err)
	}
	if parses.Load() != 1 {
		t.Error("the oldest entry was not evicted")
	}
}

// TestCacheConcurrent is for -race: many goroutines validating, caching and
// evicting at once, each always getting its own token's claims.
func TestCacheConcurrent(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) { c.CacheSize = 16 })
	const tenants = 40
	toks := make([]string, tenants)
	for i := range toks {
		toks[i] = e.platform(e.ed, fmt.Sprintf("tenant-%02d", i))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				n := (g*7 + i) % tenants
				c, err := e.validate(toks[n])
				if err != nil {
					t.Error(err)
					return
				}
				if want := fmt.Sprintf("tenant-%02d", n); c.TenantID != want {
					t.Errorf("token of %s gave claims of %s", want, c.TenantID)
					return
				}
				c.Groups[0] = "mutated"
			}
		})
	}
	wg.Wait()
	if n := auth.CacheLen(e.v); n > 16 {
		t.Errorf("cache holds %d entries, size 16", n)
	}
}
