package presave

import (
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// Plan is what a release's open pre-saves will take, told before the day:
// per provider, the actions left, the provider requests they make at
// most, how long those take at the configured pace, YouTube's units
// against the daily budget, and how many cannot be delivered at the
// release's current time.
type Plan struct {
	ReleaseID uuid.UUID
	AsOf      time.Time
	Providers map[providers.Name]ProviderPlan
	// Warnings is what the configured provider apps will not serve of it.
	Warnings []Warning
}

// ProviderPlan is one provider's part of a Plan.
type ProviderPlan struct {
	// Presaves is how many are open (pending, enqueued, running or held).
	Presaves int
	// Actions counts the open pre-saves' actions without a result.
	Actions map[providers.Action]int
	// Calls is the provider requests those actions make at most, each
	// finding everything missing (Provider.Calls): what the shared
	// limiter will pace.
	Calls int
	// RatePerSecond is the configured pace (0: unlimited), and
	// DrainSeconds the time Calls take at it (0 when unlimited).
	RatePerSecond float64
	DrainSeconds  float64
	// Units is the provider's quota units those actions cost at most
	// (Provider.QuotaCost), DailyUnits the budget per quota day, and
	// QuotaDays how many full quota days they need (YouTube; 0 for a
	// provider without a unit quota).
	Units, DailyUnits, QuotaDays int
	// Undeliverable counts the open pre-saves that cannot be delivered
	// at their current due time: their grant expires before (Horizon),
	// or none is stored.
	Undeliverable int
	// Resolved is false while the release's codes (UPC, ISRCs) are not
	// all found in the provider's catalogue: its pre-saves wait for them.
	Resolved bool
}

// Plan computes a release's plan from its open pre-saves.
func (s *Service) Plan(ctx context.Context, releaseID uuid.UUID) (Plan, error) {
	r, err := s.store.Release(ctx, releaseID)
	if errors.Is(err, store.ErrNotFound) {
		return Plan{}, ErrReleaseNotFound
	}
	if err != nil {
		return Plan{}, err
	}
	open, err := s.store.OpenPresaves(ctx, releaseID)
	if err != nil {
		return Plan{}, err
	}
	cfg := s.queue.Config()
	plan := Plan{ReleaseID: releaseID, AsOf: s.now(), Providers: map[providers.Name]ProviderPlan{}}
	for _, n := range providers.Names {
		pp := ProviderPlan{Actions: map[providers.Action]int{}, RatePerSecond: cfg.Rates[n].PerSecond,
			Resolved: n != providers.Spotify || r.SpotifyResolution.State != store.ResolutionPending}
		if n == providers.YouTube {
			pp.DailyUnits = cfg.YouTubeDailyUnits
		}
		plan.Providers[n] = pp
	}
	for _, o := range open {
		prov, ok := s.providers.Get(o.Provider)
		if !ok {
			continue
		}
		pp := plan.Providers[o.Provider]
		pp.Presaves++
		t := r.Target(o.Provider)
		if o.OwnPlaylist {
			t.MyPlaylist.ID = "known" // its calls no longer include finding or creating it
		}
		available := prov.Actions(t)
		var doable []providers.Action
		for _, a := range o.Remaining {
			pp.Actions[a]++
			if slices.Contains(available, a) {
				doable = append(doable, a)
				pp.Units += prov.QuotaCost(a, "")
			}
		}
		pp.Calls += providers.PlanCalls(prov, doable, t)
		if o.AuthorizedAt == nil || PastHorizon(prov, *o.AuthorizedAt, o.DueAt) {
			pp.Undeliverable++
		}
		plan.Providers[o.Provider] = pp
	}
	for n, pp := range plan.Providers {
		if pp.RatePerSecond > 0 {
			pp.DrainSeconds = float64(pp.Calls) / pp.RatePerSecond
		}
		if pp.DailyUnits > 0 && pp.Units > 0 {
			pp.QuotaDays = int(math.Ceil(float64(pp.Units) / float64(pp.DailyUnits)))
		}
		plan.Providers[n] = pp
	}
	if plan.Warnings, err = s.planWarnings(ctx, r, plan); err != nil {
		return Plan{}, err
	}
	return plan, nil
}
