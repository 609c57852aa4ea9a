package ui

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The default sign-in limit per address: a burst of signInBurst, then one
// attempt every signInEvery. Enough for a person who mistyped; far too
// few to guess a token (or a password at the identity provider, whose
// sign-in starts here).
const (
	signInBurst = 10
	signInEvery = 6 * time.Second
)

// maxLimited bounds the addresses a Limiter remembers: past it, it starts
// over, so a flood of addresses cannot grow memory without end.
const maxLimited = 10000

// Limiter limits attempts per key (an address). It is safe for
// concurrent use.
type Limiter struct {
	mu    sync.Mutex
	burst int
	every time.Duration
	keys  map[string]*rate.Limiter
}

// NewLimiter allows burst attempts per key at once, then one every every.
func NewLimiter(burst int, every time.Duration) *Limiter {
	return &Limiter{burst: burst, every: every, keys: map[string]*rate.Limiter{}}
}

// Allow reports whether key may make an attempt now, and counts it.
func (l *Limiter) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= maxLimited {
			clear(l.keys)
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.keys[key] = lim
	}
	return lim.Allow()
}
