package jobs

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/store"
)

// releaseCache keeps the releases this process works on, so the
// thousands of pre-saves of one release on release day do not each read
// it. An entry is only used for the exact version (updated_at) the
// attempt's start statement saw, so an edited release is read again at
// once: the cache never serves a stale target.
type releaseCache struct {
	mu sync.Mutex
	m  map[uuid.UUID]store.Release
}

// maxCachedReleases bounds the cache; past it the cache starts over
// (a release day concerns a handful of releases).
const maxCachedReleases = 256

// get returns the release id at version updatedAt, reading it when the
// cache holds another version (or none).
func (c *releaseCache) get(ctx context.Context, st *store.Store, id uuid.UUID, updatedAt time.Time) (store.Release, error) {
	c.mu.Lock()
	r, ok := c.m[id]
	c.mu.Unlock()
	if ok && !updatedAt.IsZero() && r.UpdatedAt.Equal(updatedAt) {
		return r, nil
	}
	r, err := st.Release(ctx, id)
	if err != nil {
		return store.Release{}, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedReleases {
		c.m = map[uuid.UUID]store.Release{}
	}
	if cur, ok := c.m[id]; !ok || !cur.UpdatedAt.After(r.UpdatedAt) {
		c.m[id] = r
	}
	c.mu.Unlock()
	return r, nil
}
