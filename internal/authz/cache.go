package authz

import (
	"time"

	"github.com/cedar-policy/cedar-go"

	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// maxAge bounds how long a set is used without being read again, in case
// an invalidation went missing all the same.
const maxAge = 5 * time.Minute

// cache holds the compiled effective sets by tenant and the parsed global
// policies (see package lru for the generation rule). A global change
// purges both.
type cache struct {
	sets    *lru.Cache[tenant.ID, *effective]
	globals *lru.Cache[struct{}, *globals]
	// bounds are trusts' compiled policies by the hash of their text:
	// content-addressed, so never stale, and kept on every node.
	bounds *lru.Cache[[32]byte, *cedar.PolicySet]
}

func newCache(size int, on bool) *cache {
	return &cache{
		sets:    lru.New[tenant.ID, *effective](lru.Options[*effective]{Size: size, MaxAge: maxAge, Off: !on}),
		globals: lru.New[struct{}, *globals](lru.Options[*globals]{Size: 1, MaxAge: maxAge, Off: !on}),
		bounds:  lru.New[[32]byte, *cedar.PolicySet](lru.Options[*cedar.PolicySet]{Size: size, MaxAge: maxAge}),
	}
}

// evict drops tenant tid's set.
func (c *cache) evict(tid tenant.ID) { c.sets.Evict(tid) }

// purge drops everything (a global change).
func (c *cache) purge() {
	c.globals.Purge()
	c.sets.Purge()
}

// enable and disable follow the node's listening for invalidations.
func (c *cache) enable() {
	c.globals.Enable()
	c.sets.Enable()
}

func (c *cache) disable() {
	c.globals.Disable()
	c.sets.Disable()
}
