package jobs

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// storefrontRecheck is how long a storefront's "nothing yet" for a code
// stands before the code is looked up there again: once per release and
// storefront every 30 s at most, never once per fan.
const storefrontRecheck = 30 * time.Second

// storefrontCache holds what releases' codes resolved to per storefront
// (Apple Music), in front of the table every worker shares: a lookup is
// made once per release and storefront (singleflight within a worker,
// the table across workers), never per fan.
type storefrontCache struct {
	mu    sync.Mutex
	m     map[storefrontKey]map[string]store.StorefrontCode
	group singleflight.Group
}

type storefrontKey struct {
	release    uuid.UUID
	storefront string
}

// targetCodes lists t's codes: its UPC, then its ISRCs.
func targetCodes(t providers.Target) []store.Code {
	var out []store.Code
	if t.UPC != "" {
		out = append(out, store.Code{Kind: providers.CodeUPC, Code: t.UPC})
	}
	for _, isrc := range t.ISRCs {
		out = append(out, store.Code{Kind: providers.CodeISRC, Code: isrc})
	}
	return out
}

// settled reports whether found answers every code without a lookup:
// found, or found missing less than storefrontRecheck ago.
func settled(found map[string]store.StorefrontCode, codes []store.Code, now time.Time) bool {
	for _, c := range codes {
		f, ok := found[store.CodeKey(c.Kind, c.Code)]
		if !ok || (f.ID == "" && now.Sub(f.CheckedAt) >= storefrontRecheck) {
			return false
		}
	}
	return true
}

// inStorefront adds to t the catalogue IDs its codes name in the fan's
// storefront (t.Storefront), for a provider whose catalogue differs by
// storefront. A code the storefront lacks adds nothing: the action then
// finds nothing live there, and waits like any release not out yet.
func (w *Worker) inStorefront(ctx context.Context, prov providers.Provider, releaseID uuid.UUID, t *providers.Target) error {
	res, ok := prov.(providers.StorefrontResolver)
	codes := targetCodes(*t)
	if !ok || t.Storefront == "" || len(codes) == 0 {
		return nil
	}
	found, err := w.storefronts.lookup(ctx, w, prov.Name(), res, storefrontKey{releaseID, t.Storefront}, codes)
	if err != nil {
		return err
	}
	for _, c := range codes {
		id := found[store.CodeKey(c.Kind, c.Code)].ID
		switch {
		case id == "":
		case c.Kind == providers.CodeUPC && !slices.Contains(t.AlbumIDs, id):
			t.AlbumIDs = append(slices.Clip(t.AlbumIDs), id)
		case c.Kind == providers.CodeISRC && !slices.Contains(t.TrackIDs, id):
			t.TrackIDs = append(slices.Clip(t.TrackIDs), id)
		}
	}
	return nil
}

// lookup returns what codes resolved to for k: from memory, else from
// the shared table, else by asking the provider (and recording it).
func (c *storefrontCache) lookup(ctx context.Context, w *Worker, name providers.Name, res providers.StorefrontResolver,
	k storefrontKey, codes []store.Code) (map[string]store.StorefrontCode, error) {
	c.mu.Lock()
	found := c.m[k]
	c.mu.Unlock()
	if settled(found, codes, time.Now()) {
		return found, nil
	}
	v, err, _ := c.group.Do(k.release.String()+"/"+k.storefront, func() (any, error) {
		found, err := w.st.StorefrontCodes(ctx, k.release, k.storefront)
		if err != nil {
			return nil, err
		}
		fresh := map[string]store.StorefrontCode{}
		for _, code := range codes {
			key := store.CodeKey(code.Kind, code.Code)
			if settled(found, []store.Code{code}, time.Now()) {
				continue
			}
			if err := w.limiter.Wait(ctx, string(name), 1, w.cfg.MaxLimiterWait); err != nil {
				return nil, err
			}
			id, err := res.ResolveIn(ctx, k.storefront, code.Kind, code.Code)
			if err != nil {
				return nil, err
			}
			fresh[key] = store.StorefrontCode{ID: id, CheckedAt: time.Now()}
			found[key] = fresh[key]
		}
		if len(fresh) > 0 {
			if err := w.st.PutStorefrontCodes(ctx, k.release, k.storefront, fresh); err != nil {
				return nil, err
			}
		}
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxCachedReleases*8 {
			c.m = map[storefrontKey]map[string]store.StorefrontCode{}
		}
		c.m[k] = found
		c.mu.Unlock()
		return found, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]store.StorefrontCode), nil
}
