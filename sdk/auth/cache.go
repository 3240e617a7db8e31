package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers verified tokens by the SHA-256 of the token, never
// the token itself. It is bounded: each shard evicts its oldest entry
// (first in, first out) when full. An entry is used only before the token's
// exp and only while the key that verified it is still in its issuer's
// current key set, so a key the issuer removes stops cached tokens too.
type tokenCache struct {
	shards []cacheShard
}

type cacheEntry struct {
	claims *Claims // never handed out: Validate returns clones
	exp    int64   // Unix nanoseconds
	issuer *issuerKeys
	key    *verifyKey
}

type cacheShard struct {
	mu   sync.RWMutex
	m    map[[sha256.Size]byte]*cacheEntry
	ring [][sha256.Size]byte // insertion order; ring[next] is the oldest when full
	next int
}

const maxCacheShards = 16

func newTokenCache(size int) *tokenCache {
	n := min(size, maxCacheShards)
	per := (size + n - 1) / n
	c := &tokenCache{shards: make([]cacheShard, n)}
	for i := range c.shards {
		c.shards[i].m = make(map[[sha256.Size]byte]*cacheEntry, per)
		c.shards[i].ring = make([][sha256.Size]byte, 0, per)
	}
	return c
}

func (c *tokenCache) shard(sum *[sha256.Size]byte) *cacheShard {
	return &c.shards[int(sum[0])%len(c.shards)]
}

// get returns the entry of a cached token still valid at now whose key is
// still in its issuer's current key set, or nil.
func (c *tokenCache) get(sum *[sha256.Size]byte, now time.Time) *cacheEntry {
	s := c.shard(sum)
	s.mu.RLock()
	e := s.m[*sum]
	s.mu.RUnlock()
	if e == nil || now.UnixNano() >= e.exp {
		return nil
	}
	if ks := e.issuer.keys.Load(); ks == nil || ks.keys[e.key.kid] != e.key {
		return nil // the issuer's key set no longer holds the key
	}
	return e
}

// put adds an entry, evicting the shard's oldest when it is full.
func (c *tokenCache) put(sum *[sha256.Size]byte, e *cacheEntry) {
	s := c.shard(sum)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*sum]; ok {
		s.m[*sum] = e
		return
	}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, *sum)
	} else {
		delete(s.m, s.ring[s.next])
		s.ring[s.next] = *sum
		s.next = (s.next + 1) % len(s.ring)
	}
	s.m[*sum] = e
}

// len is the number of entries.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
