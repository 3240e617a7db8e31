package envelope

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// CacheConfig sets the limits of a Cache. Zero fields take the defaults.
type CacheConfig struct {
	// MaxAge is how long a data key is used after the provider made or
	// unwrapped it. Default 5 minutes.
	MaxAge time.Duration
	// MaxMessages is how many messages one cached data key encrypts.
	// Default 2^32.
	MaxMessages uint64
	// MaxBytes is how many plaintext bytes one cached data key encrypts,
	// in all its messages. A message larger than that gets a data key of
	// its own, not cached. Default: no limit (math.MaxUint64). While it
	// is set, encrypting writers (whose length is not known in advance)
	// get data keys of their own too.
	MaxBytes uint64
	// MaxEntries bounds the number of data keys kept on each side
	// (encryption and decryption); the least recently used goes first.
	// Default 1000.
	MaxEntries int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Cache keeps data keys for reuse, like the AWS Encryption SDK's caching
// materials manager:
//
//   - Encryption side: a data key of the provider is used for further
//     messages with the same partition, tenant_id, key id and encryption
//     context until its age, message or byte limit is reached. An entry is
//     never used for another tenant or context.
//   - Decryption side: the data key unwrapped from a wrapped key under a
//     context is kept by partition, tenant_id, wrapped key and context, for
//     MaxAge.
//
// Concurrent misses of the same entry make one provider call. Each side
// holds at most MaxEntries keys. A key's bytes are zeroed when its entry
// leaves the cache (expiry, limit, eviction, Purge); a message works with a
// copy that it zeroes after deriving its own key.
//
// A key stays usable until MaxAge even if the provider would refuse it now
// (the tenant key disabled, the caller's rights revoked): keep MaxAge short
// where that matters, or Purge.
//
// A Cache is safe for concurrent use and may be shared by Crypters (see
// Config.Partition).
type Cache struct {
	maxAge      time.Duration
	maxMessages uint64
	maxBytes    uint64
	now         func() time.Time

	mu       sync.Mutex
	enc, dec lru
	stats    CacheStats

	flights singleflight.Group

	// beforeFlight, if set (tests), runs before a miss joins or starts a
	// provider call.
	beforeFlight func()
}

// CacheStats counts a cache's lookups.
type CacheStats struct {
	EncryptHits, EncryptMisses uint64
	DecryptHits, DecryptMisses uint64
	EncryptEntries             int // data keys held now
	DecryptEntries             int
}

// NewCache returns a cache with the given limits.
func NewCache(cfg CacheConfig) *Cache {
	c := &Cache{maxAge: cfg.MaxAge, maxMessages: cfg.MaxMessages, maxBytes: cfg.MaxBytes, now: cfg.Now}
	if c.maxAge <= 0 {
		c.maxAge = 5 * time.Minute
	}
	if c.maxMessages == 0 {
		c.maxMessages = 1 << 32
	}
	if c.maxBytes == 0 {
		c.maxBytes = math.MaxUint64
	}
	if c.now == nil {
		c.now = time.Now
	}
	n := cfg.MaxEntries
	if n <= 0 {
		n = 1000
	}
	c.enc.init(n)
	c.dec.init(n)
	return c
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.EncryptEntries, s.DecryptEntries = c.enc.l.Len(), c.dec.l.Len()
	return s
}

// Purge removes (and zeroes) every cached data key.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enc.purge()
	c.dec.purge()
}

func (c *Cache) bytesUnlimited() bool { return c.maxBytes == math.MaxUint64 }

// entry is a cached data key.
type entry struct {
	key      string
	dataKey  []byte // DataKeySize bytes, zeroed (and nil) once the entry is dead
	wrapped  []byte // encryption side
	created  time.Time
	messages uint64
	bytes    uint64
	elem     *list.Element
}

func (e *entry) dead() bool { return e.dataKey == nil }

// lru is one side of the cache, under Cache.mu.
type lru struct {
	max int
	m   map[string]*entry
	l   *list.List // front: most recently used
}

func (s *lru) init(max int) { s.max, s.m, s.l = max, make(map[string]*entry), list.New() }

func (s *lru) get(key []byte) *entry {
	e := s.m[string(key)]
	if e != nil {
		s.l.MoveToFront(e.elem)
	}
	return e
}

// add inserts e, replacing an entry of the same key and evicting the least
// recently used beyond max.
func (s *lru) add(e *entry) {
	if old := s.m[e.key]; old != nil {
		s.remove(old)
	}
	e.elem = s.l.PushFront(e)
	s.m[e.key] = e
	for s.l.Len() > s.max {
		s.remove(s.l.Back().Value.(*entry))
	}
}

// remove takes e out (if it is still in) and zeroes its key.
func (s *lru) remove(e *entry) {
	if s.m[e.key] == e {
		delete(s.m, e.key)
		s.l.Remove(e.elem)
	}
	clear(e.dataKey)
	e.dataKey = nil
}

func (s *lru) purge() {
	for s.l.Len() > 0 {
		s.remove(s.l.Front().Value.(*entry))
	}
}

func appendField(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendEncKey appends the key of an encryption-side entry to b.
func appendEncKey(b []byte, partition, tenant, keyID string, context []byte) []byte {
	b = append(b, 'e')
	b = appendField(b, []byte(partition))
	b = appendField(b, []byte(tenant))
	b = appendField(b, []byte(keyID))
	return appendField(b, context)
}

// appendDecKey appends the key of a decryption-side entry to b.
func appendDecKey(b []byte, partition, tenant string, wrapped, context []byte) []byte {
	b = append(b, 'd')
	b = appendField(b, []byte(partition))
	b = appendField(b, []byte(tenant))
	b = appendField(b, wrapped)
	return appendField(b, context)
}

// expired reports whether e is past its age (under mu).
func (c *Cache) expired(e *entry, now time.Time) bool {
	return now.Sub(e.created) >= c.maxAge
}

// useForEncryption counts one message of n bytes against e and copies its
// key into dk, or removes e if it is dead, expired or cannot take the
// message (under mu). It reports whether dk was set.
func (c *Cache) useForEncryption(e *entry, dk *[DataKeySize]byte, n uint64) bool {
	if e.dead() {
		return false
	}
	if c.expired(e, c.now()) || e.messages >= c.maxMessages || n > c.maxBytes-e.bytes {
		c.enc.remove(e)
		return false
	}
	e.messages++
	e.bytes += n
	copy(dk[:], e.dataKey)
	if e.messages == c.maxMessages || e.bytes == c.maxBytes && c.maxBytes != math.MaxUint64 {
		c.enc.remove(e) // used up
	}
	return true
}

// useForDecryption copies e's key into dk unless e is dead or expired
// (under mu).
func (c *Cache) useForDecryption(e *entry, dk *[DataKeySize]byte) bool {
	if e.dead() {
		return false
	}
	if c.expired(e, c.now()) {
		c.dec.remove(e)
		return false
	}
	copy(dk[:], e.dataKey)
	return true
}

// flightAttempts bounds how often a caller whose shared provider call was
// used up by others (or failed with another caller's context error) tries
// again before it calls the provider on its own.
const flightAttempts = 4

// encryptionKey puts into dk a data key for one message of n bytes under
// key and returns its wrapped form: a cached one, or one that fetch makes
// (one call for concurrent misses). A shared call runs in a goroutine of
// its own and may outlive the caller that started it: it calls the fetch
// function that detach, called by that caller, returns, which must hold
// its own copies of the caller's inputs.
func (c *Cache) encryptionKey(ctx context.Context, dk *[DataKeySize]byte, kb []byte, n uint64,
	fetch func(context.Context) (pt, wrapped []byte, err error),
	detach func() func(context.Context) (pt, wrapped []byte, err error)) ([]byte, error) {
	if n > c.maxBytes { // too big for any cached key: a key of its own, not kept
		pt, wrapped, err := fetch(ctx)
		if err != nil {
			return nil, err
		}
		copy(dk[:], pt)
		clear(pt)
		return wrapped, nil
	}
	for range flightAttempts {
		c.mu.Lock()
		if e := c.enc.get(kb); e != nil && c.useForEncryption(e, dk, n) {
			c.stats.EncryptHits++
			c.mu.Unlock()
			return e.wrapped, nil
		}
		c.stats.EncryptMisses++
		c.mu.Unlock()
		key, shared := string(kb), detach()
		e, err := c.flight(ctx, key, func(ctx context.Context) (*entry, error) {
			pt, wrapped, err := shared(ctx)
			if err != nil {
				return nil, err
			}
			e := &entry{key: key, dataKey: pt, wrapped: wrapped, created: c.now()}
			c.mu.Lock()
			c.enc.add(e)
			c.mu.Unlock()
			return e, nil
		})
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		ok := c.useForEncryption(e, dk, n)
		c.mu.Unlock()
		if ok {
			return e.wrapped, nil
		}
	}
	pt, wrapped, err := fetch(ctx)
	if err != nil {
		return nil, err
	}
	copy(dk[:], pt)
	clear(pt)
	return wrapped, nil
}

// decryptionKey puts into dk the data key of a decryption-side entry: a
// cached one or one that fetch unwraps (one call for concurrent misses;
// see encryptionKey for detach).
func (c *Cache) decryptionKey(ctx context.Context, dk *[DataKeySize]byte, kb []byte,
	fetch func(context.Context) ([]byte, error), detach func() func(context.Context) ([]byte, error)) error {
	for range flightAttempts {
		c.mu.Lock()
		if e := c.dec.get(kb); e != nil && c.useForDecryption(e, dk) {
			c.stats.DecryptHits++
			c.mu.Unlock()
			return nil
		}
		c.stats.DecryptMisses++
		c.mu.Unlock()
		key, shared := string(kb), detach()
		e, err := c.flight(ctx, key, func(ctx context.Context) (*entry, error) {
			pt, err := shared(ctx)
			if err != nil {
				return nil, err
			}
			e := &entry{key: key, dataKey: pt, created: c.now()}
			c.mu.Lock()
			c.dec.add(e)
			c.mu.Unlock()
			return e, nil
		})
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return err
		}
		c.mu.Lock()
		ok := c.useForDecryption(e, dk)
		c.mu.Unlock()
		if ok {
			return nil
		}
	}
	pt, err := fetch(ctx)
	if err != nil {
		return err
	}
	copy(dk[:], pt)
	clear(pt)
	return nil
}

var errRetry = errors.New("envelope: retry")

// flight runs load once for all concurrent callers of the same key. The
// call runs with the context of the caller that started it; a caller
// waits no longer than its own context allows, and one whose wait ended
// in another caller's context error is told to try again (errRetry).
func (c *Cache) flight(ctx context.Context, key string, load func(context.Context) (*entry, error)) (*entry, error) {
	if c.beforeFlight != nil {
		c.beforeFlight()
	}
	ch := c.flights.DoChan(key, func() (v any, err error) {
		defer func() {
			if r := recover(); r != nil { // a panicking provider fails the callers, not the process
				v, err = nil, fmt.Errorf("envelope: key provider panicked: %v", r)
			}
		}()
		return load(ctx)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			if ctx.Err() == nil && (errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded)) {
				return nil, errRetry
			}
			return nil, r.Err
		}
		return r.Val.(*entry), nil
	}
}
