package batch_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/presave/presave/internal/batch"
)

// TestGathersWhileFlushing proves that requests arriving while the only
// flush slot is busy are served by one later flush, each with its own
// result.
func TestGathersWhileFlushing(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	b, err := batch.New(batch.Config{NoWait: true, Flushers: 1}, func(_ context.Context, reqs []int) ([]int, error) {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, len(reqs))
		mu.Unlock()
		if first {
			close(entered)
			<-release
		}
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = r * 10
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	got := make([]int, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got[0], _ = b.Do(context.Background(), 0)
	}()
	<-entered // the first flush holds the only slot
	joined := make(chan struct{}, n)
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			joined <- struct{}{}
			got[i], _ = b.Do(context.Background(), i)
		}()
	}
	for i := 1; i < n; i++ {
		<-joined
	}
	// Every later request is in the open batch once its leader waits for
	// the slot: wait for that rather than sleeping.
	waitFor(t, func() bool { return b.Pending() == n-1 })
	close(release)
	wg.Wait()
	for i, v := range got {
		if v != i*10 {
			t.Errorf("request %d got %d, want %d", i, v, i*10)
		}
	}
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != n-1 {
		t.Errorf("flush sizes %v, want [1 %d]", sizes, n-1)
	}
}

func TestMaxRowsSplitsAndErrorsReachEveryCaller(t *testing.T) {
	boom := errors.New("boom")
	var mu sync.Mutex
	var sizes []int
	b, err := batch.New(batch.Config{MaxRows: 3, MaxWait: time.Hour}, func(_ context.Context, reqs []int) ([]int, error) {
		mu.Lock()
		sizes = append(sizes, len(reqs))
		mu.Unlock()
		return nil, boom
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Do(context.Background(), i)
		}()
	}
	wg.Wait() // MaxWait is an hour: only full batches can have flushed
	for i, e := range errs {
		if !errors.Is(e, boom) {
			t.Errorf("request %d: err %v, want boom", i, e)
		}
	}
	if len(sizes) != 2 || sizes[0] != 3 || sizes[1] != 3 {
		t.Errorf("flush sizes %v, want [3 3]", sizes)
	}
}

func TestFlushPanicAndMiscountAreErrors(t *testing.T) {
	b, _ := batch.New(batch.Config{NoWait: true}, func(context.Context, []int) ([]int, error) { panic("no") })
	if _, err := b.Do(context.Background(), 1); err == nil {
		t.Error("a panicking flush returned no error")
	}
	b, _ = batch.New(batch.Config{NoWait: true}, func(context.Context, []int) ([]int, error) { return nil, nil })
	if _, err := b.Do(context.Background(), 1); err == nil {
		t.Error("a flush without results returned no error")
	}
	if _, err := batch.New(batch.Config{MaxWait: -1}, func(context.Context, []int) ([]int, error) { return nil, nil }); err == nil {
		t.Error("a negative MaxWait was accepted")
	}
}

func TestCancelledCallerStillGetsItsResult(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b, _ := batch.New(batch.Config{NoWait: true}, func(ctx context.Context, reqs []int) ([]int, error) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return reqs, nil
	})
	if v, err := b.Do(ctx, 7); err != nil || v != 7 {
		t.Errorf("got %d, %v; want 7 written despite the caller's cancelled context", v, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
