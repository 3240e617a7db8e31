// Package fairshare shares a bounded resource (CPU slots for guests,
// in-flight API requests) among tenants so that none can take all of it:
// each tenant holds at most its share, and waiters are served in arrival
// order, skipping tenants at their share.
package fairshare

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// ErrBusy is returned when no slot freed up within the wait.
var ErrBusy = errors.New("fairshare: no slot within the wait")

// Slots is a fair semaphore: at most max holders, at most perKey of
// them for one key (a tenant), waiters served in arrival order except
// that a waiter whose key is at its share lets later ones pass.
type Slots struct {
	mu      sync.Mutex
	max     int
	perKey  int
	held    int
	byKey   map[string]int
	waiters list.List // of *waiter
}

type waiter struct {
	key   string
	ready chan struct{}
	done  bool // granted or abandoned
}

// New returns Slots of total holders, perKey of them for one key.
func New(total, perKey int) *Slots {
	total, perKey = max(total, 1), max(perKey, 1)
	return &Slots{max: total, perKey: perKey, byKey: map[string]int{}}
}

func (s *Slots) fits(key string) bool { return s.held < s.max && s.byKey[key] < s.perKey }

func (s *Slots) take(key string) {
	s.held++
	s.byKey[key]++
}

// Acquire takes a slot for key, waiting at most wait; past it, ErrBusy.
func (s *Slots) Acquire(ctx context.Context, key string, wait time.Duration) error {
	s.mu.Lock()
	if s.waiters.Len() == 0 && s.fits(key) {
		s.take(key)
		s.mu.Unlock()
		return nil
	}
	w := &waiter{key: key, ready: make(chan struct{})}
	el := s.waiters.PushBack(w)
	s.mu.Unlock()
	s.grant() // the queue may hold only tenants at their share
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	s.mu.Lock()
	if w.done { // granted meanwhile: give it back
		s.mu.Unlock()
		s.Release(key)
	} else {
		w.done = true
		s.waiters.Remove(el)
		s.mu.Unlock()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return ErrBusy
}

// Release gives key's slot back and serves the waiters that fit.
func (s *Slots) Release(key string) {
	s.mu.Lock()
	s.held--
	if s.byKey[key]--; s.byKey[key] == 0 {
		delete(s.byKey, key)
	}
	s.mu.Unlock()
	s.grant()
}

func (s *Slots) grant() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for el := s.waiters.Front(); el != nil && s.held < s.max; {
		next := el.Next()
		w := el.Value.(*waiter)
		if s.fits(w.key) {
			s.take(w.key)
			w.done = true
			s.waiters.Remove(el)
			close(w.ready)
		}
		el = next
	}
}
