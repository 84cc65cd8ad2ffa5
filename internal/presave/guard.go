package presave

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// Resume lets a release's drain through again after its campaign guard
// paused it (or while its canary is still deciding), for provider p, or
// for every provider when p is empty: the guard opens, the circuit
// breaker counts afresh, and the held pre-saves run again with every
// action that already succeeded kept; the ones waiting are claimed by
// the relay. Resuming a guard that is open already changes nothing. It
// returns, per provider resumed, how many held pre-saves run again.
// The operator fixes the release's targets (PATCH) first.
func (s *Service) Resume(ctx context.Context, id uuid.UUID, p providers.Name) (map[providers.Name]int, error) {
	r, err := s.store.Release(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Status != store.ReleaseScheduled {
		return nil, errorf(KindConflict, "release_not_scheduled", "The release is %s; only a scheduled release can resume.", r.Status)
	}
	names := providers.Names
	if p != "" {
		names = []providers.Name{p}
	}
	out := map[providers.Name]int{}
	for _, n := range names {
		o, ok, err := s.store.OpenGuard(ctx, id, n, "")
		if err != nil {
			return nil, fmt.Errorf("presave: resume %s: %w", n, err)
		}
		if ok {
			out[n] = o.Resumed
			s.log.Info("release resumed by the operator", "release_id", id, "provider", n, "held_resumed", o.Resumed)
		}
	}
	return out, nil
}
