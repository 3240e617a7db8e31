package tenantdb

import (
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// siloKey names a silo database.
type siloKey struct{ cluster, database string }

// siloPool is the connection pool of one silo database. A transaction
// holds it (users) from before it acquires a connection until after it
// releases it, so that an eviction never closes a pool under a
// transaction: the pool is closed when its last user lets go.
type siloPool struct {
	pool    *pgxpool.Pool
	users   int       // under silos.mu
	last    time.Time // under silos.mu: when the last user let go
	evicted bool      // under silos.mu
}

// silos is the bounded LRU of silo pools. A silo tenant's pool is kept
// warm across its transactions, up to max pools; the least recently used
// beyond that, and any pool idle for longer than idle, is closed.
type silos struct {
	max  int
	idle time.Duration
	now  func() time.Time
	open func(siloKey) (*pgxpool.Pool, error)

	mu     sync.Mutex
	pools  *lru[siloKey, *siloPool]
	closed bool
}

// acquire returns key's pool, opened if need be (pgxpool connects
// lazily, so opening does no I/O), for the caller to release.
func (s *silos) acquire(key siloKey) (*siloPool, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if sp, ok := s.pools.get(key); ok {
		sp.users++
		s.mu.Unlock()
		return sp, nil
	}
	pool, err := s.open(key)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	sp := &siloPool{pool: pool, users: 1}
	dropped := s.pools.put(key, sp)
	closing := s.evictLocked(dropped)
	s.mu.Unlock()
	closeAll(closing)
	return sp, nil
}

// release lets go of sp, closing it if it was evicted meanwhile.
func (s *silos) release(sp *siloPool) {
	s.mu.Lock()
	sp.users--
	sp.last = s.now()
	closeNow := sp.evicted && sp.users == 0
	s.mu.Unlock()
	if closeNow {
		sp.pool.Close()
	}
}

// evictLocked marks dropped pools evicted and returns those without users,
// to be closed once s.mu is released (Close waits for the pool's
// connections to close).
func (s *silos) evictLocked(dropped []*siloPool) (closing []*siloPool) {
	for _, sp := range dropped {
		sp.evicted = true
		if sp.users == 0 {
			closing = append(closing, sp)
		}
	}
	return closing
}

// evict closes key's pool, once its last user lets go.
func (s *silos) evict(key siloKey) {
	s.mu.Lock()
	var closing []*siloPool
	if sp, ok := s.pools.remove(key); ok {
		closing = s.evictLocked([]*siloPool{sp})
	}
	s.mu.Unlock()
	closeAll(closing)
}

// sweep closes the pools idle for longer than s.idle.
func (s *silos) sweep() {
	s.mu.Lock()
	now := s.now()
	closing := s.evictLocked(s.pools.removeIf(func(sp *siloPool) bool {
		return sp.users == 0 && now.Sub(sp.last) >= s.idle
	}))
	s.mu.Unlock()
	closeAll(closing)
}

// close closes every pool, waiting for those in use to be released.
func (s *silos) close() {
	s.mu.Lock()
	s.closed = true
	closing := s.evictLocked(s.pools.clear())
	s.mu.Unlock()
	closeAll(closing)
}

// len is the number of open silo pools.
func (s *silos) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pools.len()
}

func closeAll(pools []*siloPool) {
	for _, sp := range pools {
		sp.pool.Close()
	}
}
