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

// TestStopHoldsBeforePacing: a stop key at or above the caller's
// threshold refuses the call whether the key is paced or unlimited, and
// without taking a slot; below it (a newer generation) the call goes. A
// stop set while a caller waits for its slot is seen before the call.
func TestStopHoldsBeforePacing(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t)
	ctx := context.Background()
	l := ratelimit.New(rd.Client, map[string]ratelimit.Rate{"spotify": {PerSecond: 2, Burst: 1}})
	if err := rd.Client.Set(ctx, "stop:p1", "3", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"spotify", "unlimited"} {
		for gen, want := range map[int64]error{2: ratelimit.ErrStopped, 3: ratelimit.ErrStopped, 4: nil} {
			err := l.Wait(ctx, key, 1, time.Minute, ratelimit.Stop{Key: "stop:p1", AtLeast: gen}, ratelimit.Stop{Key: "stop:none", AtLeast: 1})
			if !errors.Is(err, want) || (want == nil && err != nil) {
				t.Errorf("%s, generation %d: %v, want %v", key, gen, err, want)
			}
		}
	}

	// The one slot went to generation 4 above, so the next caller is
	// told to wait about half a second; the stop is set only once that
	// answer came back (the hook says so), and wins over the slot.
	calls := &scriptCalls{done: make(chan struct{}, 16)}
	rc := redis.NewClient(rd.Opt)
	rc.AddHook(calls)
	waiter := ratelimit.New(rc, map[string]ratelimit.Rate{"spotify": {PerSecond: 2, Burst: 1}})
	done := make(chan error, 1)
	go func() {
		done <- waiter.Wait(ctx, "spotify", 1, time.Minute, ratelimit.Stop{Key: "stop:p2", AtLeast: 1})
	}()
	<-calls.done
	if err := rd.Client.Set(ctx, "stop:p2", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ratelimit.ErrStopped) {
		t.Errorf("stop set while waiting: %v, want ErrStopped", err)
	}
	if n := len(calls.done); n < 1 {
		t.Errorf("the waiter ran its script %d more times, want a second look after its wait", n)
	}
}

// scriptCalls signals each finished script call of a client.
type scriptCalls struct{ done chan struct{} }

func (h *scriptCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			h.done <- struct{}{}
		}
		return err
	}
}

func (h *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestBackoffDoublesAcrossWorkersWithJitter: rate limits that name no
// wait (YouTube's 403 rateLimitExceeded) pause the key for an
// exponentially growing, jittered time counted across workers, capped at
// BackoffMax; every worker sees the pause as a cooldown, and limits seen
// while it is on (calls already in flight) wait it out without growing
// the streak.
func TestBackoffDoublesAcrossWorkersWithJitter(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t)
	ctx := context.Background()
	limiters := []*ratelimit.Limiter{ratelimit.New(rd.Client, nil), ratelimit.New(redis.NewClient(rd.Opt), nil)}
	endPause := func() {
		t.Helper()
		if err := rd.Client.Del(ctx, ratelimit.Key("youtube", "cooldown")).Err(); err != nil {
			t.Fatal(err)
		}
	}
	distinct := map[time.Duration]bool{}
	for round := 0; round < 3; round++ {
		if round > 0 {
			// A new streak: the previous one's count is forgotten.
			endPause()
			if err := rd.Client.Del(ctx, ratelimit.Key("youtube", "backoff")).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for n := 1; n <= 9; n++ {
			if n > 1 {
				endPause() // the previous pause ran out
			}
			d, err := limiters[n%2].Backoff(ctx, "youtube")
			if err != nil {
				t.Fatal(err)
			}
			full := min(ratelimit.BackoffBaseDefault<<(n-1), ratelimit.BackoffMaxDefault)
			if d < full/2 || d > full {
				t.Fatalf("rate limit %d of the streak: pause %v, want within [%v, %v]", n, d, full/2, full)
			}
			distinct[d] = true
			left, err := limiters[(n+1)%2].CooldownLeft(ctx, "youtube")
			if err != nil || left <= 0 || left > full {
				t.Fatalf("the other worker sees a cooldown of %v (%v), want up to %v", left, err, full)
			}
			// Limits of calls in flight during the pause: the same episode.
			for range 5 {
				during, err := limiters[(n+1)%2].Backoff(ctx, "youtube")
				if err != nil || during > d {
					t.Fatalf("a limit during the pause waits %v (%v), want at most the pause %v", during, err, d)
				}
			}
		}
	}
	if len(distinct) < 20 {
		t.Errorf("only %d distinct pauses in 27: no jitter", len(distinct))
	}
}

// TestWaitChargesEveryEventBeyondTheBurst: n events above the burst are
// all paid for, a burst at a time: two waits of 10 at 20/s with a burst
// of 2 take at least (20-2)/20 s, not the 0 s of charging only the burst.
func TestWaitChargesEveryEventBeyondTheBurst(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t)
	l := ratelimit.New(rd.Client, map[string]ratelimit.Rate{"youtube": {PerSecond: 20, Burst: 2}})
	start := time.Now()
	for range 2 {
		if err := l.Wait(context.Background(), "youtube", 10, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 850*time.Millisecond {
		t.Fatalf("20 events at 20/s (burst 2) took %v, want at least 0.9 s", d)
	}
}

// TestBackoffBounds: WithBackoff sets the first pause and the cap.
func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t)
	ctx := context.Background()
	l := ratelimit.New(rd.Client, nil).WithBackoff(100*time.Millisecond, 300*time.Millisecond)
	for n, full := range []time.Duration{100, 200, 300, 300} {
		if n > 0 {
			if err := rd.Client.Del(ctx, ratelimit.Key("spotify", "cooldown")).Err(); err != nil {
				t.Fatal(err)
			}
		}
		full *= time.Millisecond
		d, err := l.Backoff(ctx, "spotify")
		if err != nil || d < full/2 || d > full {
			t.Fatalf("pause %d = %v (%v), want within [%v, %v]", n+1, d, err, full/2, full)
		}
	}
}
