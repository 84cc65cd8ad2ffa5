// Package guard holds the campaign guard's rules: when a release's canary
// lets the drain proceed or pauses it, and when the circuit breaker
// trips. They are pure functions of what the store read; the store keeps
// the guard's state and the worker applies the decisions.
//
// A target error is an action failing because of the release's target,
// not the fan: not found, not live, forbidden, invalid ID
// (providers.IsTargetError). Grant, rate and quota errors never count.
package guard

import (
	"fmt"
	"sort"
	"time"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers"
)

// Defaults of Config.
const (
	CanarySizeDefault    = 10
	BreakerRateDefault   = 0.20
	BreakerWindowDefault = 200
	HoldMaxDefault       = 72 * time.Hour
)

// Config tunes the guard (CANARY_SIZE, BREAKER_RATE, BREAKER_WINDOW,
// HOLD_MAX).
type Config struct {
	// CanarySize is how many pre-saves (besides the release's canary
	// fans) run first when a release goes live for a provider.
	CanarySize int
	// BreakerRate is the share of target errors among the last
	// BreakerWindow attempt ends above which the release pauses.
	BreakerRate float64
	// BreakerWindow is how many of the latest attempt ends the breaker
	// looks at.
	BreakerWindow int
	// HoldMax is how long after its due time a held (or paused) pre-save
	// keeps its token before it fails for good.
	HoldMax time.Duration
}

// LoadConfig reads the guard's settings; unset ones take their defaults.
func LoadConfig(env config.Env) (Config, error) {
	var c Config
	var err error
	if c.CanarySize, err = env.Int("CANARY_SIZE", CanarySizeDefault); err != nil {
		return c, err
	}
	if c.BreakerRate, err = env.Float("BREAKER_RATE", BreakerRateDefault); err != nil {
		return c, err
	}
	if c.BreakerWindow, err = env.Int("BREAKER_WINDOW", BreakerWindowDefault); err != nil {
		return c, err
	}
	if c.HoldMax, err = env.Duration("HOLD_MAX", HoldMaxDefault); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.CanarySize == 0 {
		c.CanarySize = CanarySizeDefault
	}
	if c.BreakerRate == 0 {
		c.BreakerRate = BreakerRateDefault
	}
	if c.BreakerWindow == 0 {
		c.BreakerWindow = BreakerWindowDefault
	}
	if c.HoldMax == 0 {
		c.HoldMax = HoldMaxDefault
	}
	return c
}

// Validate says what is wrong with c, if anything.
func (c Config) Validate() error {
	switch {
	case c.CanarySize < 0:
		return fmt.Errorf("CANARY_SIZE=%d: must be 0 (canary fans only) or more", c.CanarySize)
	case c.BreakerRate <= 0 || c.BreakerRate >= 1:
		return fmt.Errorf("BREAKER_RATE=%g: must be a fraction between 0 and 1, like 0.2", c.BreakerRate)
	case c.BreakerWindow < 10:
		return fmt.Errorf("BREAKER_WINDOW=%d: must be at least 10 attempt ends", c.BreakerWindow)
	case c.HoldMax < time.Hour:
		return fmt.Errorf("HOLD_MAX=%s: must be at least 1h (the operator needs time to fix the release)", c.HoldMax)
	}
	return nil
}

// BreakerMinSeen is how many attempt ends the breaker needs before it
// judges a rate: a tenth of the window, so one bad account among the
// first few fans does not pause a campaign.
func (c Config) BreakerMinSeen() int { return max(c.BreakerWindow/10, 1) }

// Tripped reports whether failed target errors among seen attempt ends
// (the latest BreakerWindow, the current one included) trip the breaker.
func (c Config) Tripped(failed, seen int) bool {
	return seen >= c.BreakerMinSeen() && float64(failed) > c.BreakerRate*float64(seen)
}

// Member is one canary pre-save as the verdict sees it.
type Member struct {
	// Actions are the consented actions.
	Actions []providers.Action
	// Results are the per-action results so far.
	Results map[providers.Action]Result
	// Finished: the pre-save is no longer runnable (final or held).
	Finished bool
	// TargetAction and TargetReason are its latest attempt's target
	// error, if any (a not-live deferral has no result but has this).
	TargetAction providers.Action
	TargetReason string
}

// Result is one action's result as the verdict sees it.
type Result struct {
	OK     bool // ok or already
	Target bool // failed with a target error
	Failed bool // failed, for whatever reason
	Reason string
}

// Kind is a canary verdict.
type Kind int

// Canary verdicts.
const (
	// Wait: the canary has not decided yet.
	Wait Kind = iota
	// Proceed: the release may drain.
	Proceed
	// Pause: an action failed with a target error on every canary
	// pre-save that has decided it, and succeeded on none.
	Pause
)

// Verdict is the canary's decision and, for a pause, its evidence.
type Verdict struct {
	Kind   Kind
	Action providers.Action
	Error  string
	Failed int // canary pre-saves on which Action failed with a target error
	Seen   int // canary pre-saves that consented to Action
}

// Canary judges a release's canary. Per action: a success on any member
// clears it; a target error on every member that consented to it (none
// undecided) pauses the release; members still running or waiting
// without a target error keep the verdict waiting. A canary whose members
// all ended without a target error (their grants were dead, say) proceeds:
// there is no evidence against the target, and the breaker still
// watches the drain.
func Canary(members []Member) Verdict {
	type tally struct {
		ok, target, undecided, seen int
		reasons                     map[string]int
	}
	byAction := map[providers.Action]*tally{}
	var order []providers.Action
	for _, m := range members {
		for _, a := range m.Actions {
			t := byAction[a]
			if t == nil {
				t = &tally{reasons: map[string]int{}}
				byAction[a] = t
				order = append(order, a)
			}
			t.seen++
			r, has := m.Results[a]
			switch {
			case has && r.OK:
				t.ok++
			case has && r.Target:
				t.target++
				t.reasons[r.Reason]++
			case !has && m.TargetAction == a:
				t.target++
				t.reasons[m.TargetReason]++
			case !has && !m.Finished:
				t.undecided++
			}
		}
	}
	waiting := false
	for _, a := range order {
		t := byAction[a]
		switch {
		case t.ok > 0:
		case t.target > 0 && t.undecided == 0:
			return Verdict{Kind: Pause, Action: a, Error: commonest(t.reasons), Failed: t.target, Seen: t.seen}
		case t.undecided > 0:
			waiting = true
		}
	}
	if waiting {
		return Verdict{Kind: Wait}
	}
	return Verdict{Kind: Proceed}
}

// commonest is the most frequent reason (ties by name, for a stable
// answer).
func commonest(reasons map[string]int) string {
	names := make([]string, 0, len(reasons))
	for r := range reasons {
		names = append(names, r)
	}
	sort.Slice(names, func(i, j int) bool {
		if reasons[names[i]] != reasons[names[j]] {
			return reasons[names[i]] > reasons[names[j]]
		}
		return names[i] < names[j]
	})
	if len(names) == 0 {
		return ""
	}
	return names[0]
}
