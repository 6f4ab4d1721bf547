package store

import (
	"context"
	"sync"
)

// A read cache makes Get remember the rows it read for as long as a
// context lives: a reconcile reads its tenant once, however many of its
// steps look at it (a domain's parts each resolve the domain against its
// tenant), and every step sees the same version of the row. A write
// through the store with that context (a status update, say) forgets the
// row it writes; writes by others are seen by the next reconcile.
type readCache struct {
	mu   sync.Mutex
	rows map[string]Resource
}

type readCacheKey struct{}

// WithReadCache returns a context whose Gets are remembered (see readCache).
// Give it to one unit of work, such as a reconcile, and no longer-lived one.
func WithReadCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, readCacheKey{}, &readCache{rows: map[string]Resource{}})
}

func cacheOf(ctx context.Context) *readCache {
	c, _ := ctx.Value(readCacheKey{}).(*readCache)
	return c
}

func (t table) cached(ctx context.Context, name string) (Resource, bool) {
	c := cacheOf(ctx)
	if c == nil {
		return Resource{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.rows[t.key(name)]
	return r, ok
}

func (t table) remember(ctx context.Context, r Resource) {
	if c := cacheOf(ctx); c != nil {
		c.mu.Lock()
		c.rows[t.key(r.Name)] = r
		c.mu.Unlock()
	}
}

// forgetAll forgets every row: a write that may change several (a
// tenant's deletion marks its domains and databases).
func forgetAll(ctx context.Context) {
	if c := cacheOf(ctx); c != nil {
		c.mu.Lock()
		clear(c.rows)
		c.mu.Unlock()
	}
}

func (t table) forget(ctx context.Context, name string) {
	if c := cacheOf(ctx); c != nil {
		c.mu.Lock()
		delete(c.rows, t.key(name))
		c.mu.Unlock()
	}
}
