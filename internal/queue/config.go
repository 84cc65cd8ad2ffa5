package queue

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers"
)

// Defaults of the scheduling contract: their one home (the README's
// configuration table quotes them).
const (
	// WindowDefault is how far ahead work goes into Redis.
	WindowDefault = 10 * time.Minute
	// PresaveMaxRetryDefault caps asynq's failure retries of a pre-save.
	PresaveMaxRetryDefault = 25
	// PresaveTimeoutDefault bounds one pre-save attempt.
	PresaveTimeoutDefault = 2 * time.Minute
	// RevokeMaxRetryDefault caps a revocation's retries (with the worker's
	// backoff they span days).
	RevokeMaxRetryDefault = 40
	// RatePerSecondDefault and RateBurstDefault pace each provider's
	// requests across all workers: under what the providers tolerate for
	// one app (Spotify publishes no number, its window is 30 s; YouTube's
	// per-user limits are generous, its daily units are not).
	RatePerSecondDefault = 20
	RateBurstDefault     = 4
	// YouTubeDailyUnitsDefault is a new Google Cloud project's YouTube
	// Data API quota per Pacific day.
	YouTubeDailyUnitsDefault = 10000
)

// Rate is a provider's request pace, shared by every worker.
type Rate struct {
	// PerSecond is the sustained rate; <= 0 means unlimited.
	PerSecond float64
	// Burst is how many requests may go at once after a quiet spell.
	Burst int
}

// Config is how tasks are queued, the same in every process.
type Config struct {
	// Window (RELAY_WINDOW): pre-saves due within it go into Redis.
	Window time.Duration
	// PresaveMaxRetry (PRESAVE_MAX_RETRY) caps a pre-save task's retries.
	PresaveMaxRetry int
	// PresaveTimeout (PRESAVE_TIMEOUT) is asynq's deadline for one attempt;
	// the worker also bounds each attempt by it.
	PresaveTimeout time.Duration
	// RevokeMaxRetry (REVOKE_MAX_RETRY) caps a revocation task's retries.
	RevokeMaxRetry int
	// Rates (SPOTIFY_RPS/SPOTIFY_BURST, YOUTUBE_RPS/YOUTUBE_BURST) pace
	// each provider's requests; the workers keep to them and the API
	// plans a release's drain with them.
	Rates map[providers.Name]Rate
	// YouTubeDailyUnits (YOUTUBE_DAILY_UNITS) is the YouTube Data API
	// budget per Pacific day, shared by every worker.
	YouTubeDailyUnits int
}

// LoadConfig reads RELAY_WINDOW, PRESAVE_MAX_RETRY, PRESAVE_TIMEOUT and
// REVOKE_MAX_RETRY, with the defaults above, and validates them.
func LoadConfig(env config.Env) (Config, error) {
	var c Config
	var errs []error
	var err error
	if env.String("PURGE_MAX_RETRY", "") != "" {
		errs = append(errs, errors.New("PURGE_MAX_RETRY is now REVOKE_MAX_RETRY (revocations at the provider are \"revoke\"; \"purge\" is deleting our copy)"))
	}
	if c.Window, err = env.Duration("RELAY_WINDOW", WindowDefault); err != nil {
		errs = append(errs, err)
	}
	if c.PresaveMaxRetry, err = env.Int("PRESAVE_MAX_RETRY", PresaveMaxRetryDefault); err != nil {
		errs = append(errs, err)
	}
	if c.PresaveTimeout, err = env.Duration("PRESAVE_TIMEOUT", PresaveTimeoutDefault); err != nil {
		errs = append(errs, err)
	}
	if c.RevokeMaxRetry, err = env.Int("REVOKE_MAX_RETRY", RevokeMaxRetryDefault); err != nil {
		errs = append(errs, err)
	}
	if c.YouTubeDailyUnits, err = env.Int("YOUTUBE_DAILY_UNITS", YouTubeDailyUnitsDefault); err != nil {
		errs = append(errs, err)
	}
	c.Rates = map[providers.Name]Rate{}
	for _, p := range providers.Names {
		rpsVar, burstVar := RateVars(p)
		rps, err := env.Float(rpsVar, RatePerSecondDefault)
		errs = append(errs, err)
		burst, err := env.Int(burstVar, RateBurstDefault)
		errs = append(errs, err)
		c.Rates[p] = Rate{PerSecond: rps, Burst: burst}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// WithDefaults fills in the zero fields.
func (c Config) WithDefaults() Config {
	if c.Window == 0 {
		c.Window = WindowDefault
	}
	if c.PresaveMaxRetry == 0 {
		c.PresaveMaxRetry = PresaveMaxRetryDefault
	}
	if c.PresaveTimeout == 0 {
		c.PresaveTimeout = PresaveTimeoutDefault
	}
	if c.RevokeMaxRetry == 0 {
		c.RevokeMaxRetry = RevokeMaxRetryDefault
	}
	// YouTubeDailyUnits keeps its zero: 0 is unlimited (LoadConfig
	// supplies the default when the variable is unset).
	if c.Rates == nil {
		c.Rates = map[providers.Name]Rate{}
	}
	for _, p := range providers.Names {
		if _, ok := c.Rates[p]; !ok {
			c.Rates[p] = Rate{PerSecond: RatePerSecondDefault, Burst: RateBurstDefault}
		}
	}
	return c
}

// Validate checks the settings.
func (c Config) Validate() error {
	switch {
	case c.Window <= 0:
		return fmt.Errorf("RELAY_WINDOW (%s) must be positive", c.Window)
	case c.PresaveMaxRetry < 0 || c.RevokeMaxRetry < 0:
		return fmt.Errorf("PRESAVE_MAX_RETRY (%d) and REVOKE_MAX_RETRY (%d) must not be negative", c.PresaveMaxRetry, c.RevokeMaxRetry)
	case c.PresaveTimeout <= 0:
		return fmt.Errorf("PRESAVE_TIMEOUT (%s) must be positive", c.PresaveTimeout)
	case c.YouTubeDailyUnits < 0:
		return fmt.Errorf("YOUTUBE_DAILY_UNITS (%d) must not be negative", c.YouTubeDailyUnits)
	case c.PresaveTimeout > stopTTL/2:
		// A stop key must outlive every attempt that started before it.
		return fmt.Errorf("PRESAVE_TIMEOUT (%s) must be at most %s", c.PresaveTimeout, stopTTL/2)
	}
	return nil
}

// RateVars names the settings of provider p's pace: SPOTIFY_RPS and
// SPOTIFY_BURST, YOUTUBE_…, APPLEMUSIC_….
func RateVars(p providers.Name) (rps, burst string) {
	prefix := strings.ToUpper(string(p))
	return prefix + "_RPS", prefix + "_BURST"
}

// RateEnv is the settings that pace every provider at rps with burst,
// as NAME=value pairs.
func RateEnv(rps, burst int) []string {
	var out []string
	for _, p := range providers.Names {
		r, b := RateVars(p)
		out = append(out, fmt.Sprintf("%s=%d", r, rps), fmt.Sprintf("%s=%d", b, burst))
	}
	return out
}
