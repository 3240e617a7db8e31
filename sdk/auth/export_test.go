package auth

import "sync/atomic"

// CountParses counts the tokens Validate hands to the JOSE parser until the
// test ends.
func CountParses(cleanup func(func())) *atomic.Int64 {
	var n atomic.Int64
	testHookParse = func() { n.Add(1) }
	cleanup(func() { testHookParse = nil })
	return &n
}

// CacheLen is the number of entries in v's token cache.
func CacheLen(v *Validator) int {
	if v.cache == nil {
		return 0
	}
	return v.cache.len()
}
