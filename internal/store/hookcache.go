package store

import (
	"sync"
	"time"
)

// hookTTL bounds how long HookTarget answers from memory: a project changed
// by another process (a second kiln on the same file) is seen within it. A
// change made through this Store is seen at once.
const hookTTL = time.Second

// hookCache keeps recent HookTarget answers. Every write of a project
// through the Store invalidates its entry; the generation makes sure that a
// lookup which read the database before such a write cannot put the old
// answer back after it.
type hookCache struct {
	mu  sync.RWMutex
	m   map[string]hookEntry
	gen uint64
}

type hookEntry struct {
	h  HookTarget
	at time.Time
}

// get returns the cached answer for name if it is younger than hookTTL,
// and the generation to pass to put otherwise.
func (c *hookCache) get(name string, now time.Time) (HookTarget, uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.m[name]
	if ok && now.Sub(e.at) < hookTTL {
		return e.h, c.gen, true
	}
	return HookTarget{}, c.gen, false
}

// put caches h, read from the database at time at, unless a project was
// written since generation gen was handed out.
func (c *hookCache) put(name string, h HookTarget, at time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil {
		c.m = make(map[string]hookEntry)
	}
	c.m[name] = hookEntry{h: h, at: at}
}

// invalidate forgets name, after its project was written.
func (c *hookCache) invalidate(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
	c.gen++
}

// invalidateAll forgets every entry (the secrets' key changed).
func (c *hookCache) invalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.gen++
}
