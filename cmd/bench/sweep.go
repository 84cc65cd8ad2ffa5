package main

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/store"
)

// sweepTimes times the statements of the periodic services (the
// sweeper's and the relay's rescue), each run once with the worker's
// settings on the benchmark's tables after run 2 (with -history, beside
// the seeded history): sweep_<name>_ms and sweep_max_ms. Each must stay
// bounded by live work, whatever the history.
func (b *bench) sweepTimes(ctx context.Context, res results) error {
	st := b.db.Store
	const limit = 1000 // RELAY_BATCH's default
	steps := []struct {
		name string
		run  func() error
	}{
		{"revive", func() error { _, err := st.ReviveStuckPresaves(ctx, time.Hour, limit); return err }},
		{"oauth_states", func() error { _, err := st.DeleteExpiredOAuthStates(ctx, limit); return err }},
		{"holds", func() error { _, err := st.ExpireHolds(ctx, 72*time.Hour, limit); return err }},
		{"tokens", func() error {
			_, _, err := st.PurgeUnneededTokens(ctx, time.Minute, store.TokenCursor{}, limit)
			return err
		}},
		{"revocations", func() error { _, err := st.RevocationIDsAfter(ctx, uuid.Nil, limit); return err }},
		{"rescue", func() error {
			_, err := st.InFlightPresaves(ctx, 10*time.Minute, 30*time.Second, store.InFlightCursor{}, limit)
			return err
		}},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.run(); err != nil {
			return err
		}
		ms := float64(time.Since(start).Microseconds()) / 1000
		res["sweep_"+s.name+"_ms"] = ms
		res["sweep_max_ms"] = max(res["sweep_max_ms"], ms)
	}
	return nil
}
