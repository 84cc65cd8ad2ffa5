package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presave/presave/internal/ratelimit"
	"github.com/presave/presave/internal/redistest"
)

// Two limiters on one Redis database behave like two worker processes:
// together they never go faster than the shared rate. Only the lower
// bound of the elapsed time is asserted (an upper bound would be
// timing-fragile).
func TestWaitPacesAcrossLimiters(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t)
	rates := map[string]ratelimit.Rate{"spotify": {PerSecond: 20, Burst: 1}}
	limiters := []*ratelimit.Limiter{ratelimit.New(rd.Client, rates), ratelimit.New(redis.NewClient(rd.Opt), rates)}
	const events = 30
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, events)
	for i := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- limiters[i%2].Wait(context.Background(), "spotify", 1, time.Minute)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if min := time.Duration(events-1) * time.Second / 20; time.Since(start) < min-50*time.Millisecond {
		t.Errorf("%d events at 20/s took %s, want at least %s", events, time.Since(start), min)
	}
}

func TestWaitBeyondMaxWaitDefers(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t)
	l := ratelimit.New(rd.Client, map[string]ratelimit.Rate{"youtube": {PerSecond: 0.5, Burst: 1}})
	ctx := context.Background()
	if err := l.Wait(ctx, "youtube", 1, time.Second); err != nil {
		t.Fatal(err)
	}
	err := l.Wait(ctx, "youtube", 1, 10*time.Millisecond)
	var we *ratelimit.WaitError
	if !errors.As(err, &we) || we.Cooldown || time.Until(we.Until) <= 0 {
		t.Fatalf("second Wait: %v, want a *WaitError in the future", err)
	}
	// Unlimited keys never wait.
	if err := l.Wait(ctx, "other", 5, 0); err != nil {
		t.Fatalf("unlimited key: %v", err)
	}
}

func TestCooldownPausesEveryone(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t)
	ctx := context.Background()
	a := ratelimit.New(rd.Client, nil)
	b := ratelimit.New(redis.NewClient(rd.Opt), nil)
	if err := a.Cooldown(ctx, "spotify", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A shorter cooldown never shortens a longer one.
	if err := b.Cooldown(ctx, "spotify", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if left, err := b.CooldownLeft(ctx, "spotify"); err != nil || left < 4*time.Second {
		t.Fatalf("CooldownLeft = %s, %v; want about 5s", left, err)
	}
	err := b.Wait(ctx, "spotify", 1, 100*time.Millisecond)
	var we *ratelimit.WaitError
	if !errors.As(err, &we) || !we.Cooldown {
		t.Fatalf("Wait during cooldown: %v, want a cooldown *WaitError", err)
	}
	// A short cooldown is simply waited out.
	if err := a.Cooldown(ctx, "youtube", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(ctx, "youtube", 1, 5*time.Second); err != nil {
		t.Fatalf("Wait through a short cooldown: %v", err)
	}
}

func TestBudgetPerPeriod(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t)
	ctx := context.Background()
	end := time.Now().Add(time.Hour).Truncate(time.Second)
	day := func(time.Time) (string, time.Time) { return "day-1", end }
	bud := ratelimit.NewBudget(rd.Client, "yt", 100, day)
	name, err := bud.Take(ctx, 51)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bud.Take(ctx, 51)
	var se *ratelimit.SpentError
	if !errors.As(err, &se) || !errors.Is(err, ratelimit.ErrBudgetSpent) || !se.ResetAt.Equal(end) {
		t.Fatalf("over budget: %v, want *SpentError resetting at %s", err, end)
	}
	if err := bud.Refund(ctx, name, 50); err != nil {
		t.Fatal(err)
	}
	if _, err := bud.Take(ctx, 51); err != nil {
		t.Fatalf("after refund: %v", err)
	}
	if used, err := bud.Used(ctx); err != nil || used != 52 {
		t.Fatalf("Used = %d, %v; want 52", used, err)
	}
}
