// Package batch gathers the requests of concurrent goroutines into
// batches that one call serves, as a group commit does: a worker's
// concurrent pre-saves start and finish in one multi-row statement per
// batch instead of one transaction each, and each caller still waits for
// its own row's outcome.
//
// A batch opens with its first request, whose caller leads it: the
// leader waits up to MaxWait for company (less once MaxRows have come),
// then for one of Flushers flush slots, and flushes whatever the batch
// then holds. Requests arriving while every slot is busy join the open
// batch, so batches grow with the load and cost nothing extra when the
// process is idle (MaxWait 0 flushes at once).
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults for Config.
const (
	// MaxRowsDefault bounds a batch; the statements take arrays, so a
	// bigger batch only costs the callers who wait for it.
	MaxRowsDefault = 200
	// MaxWaitDefault is a few milliseconds: long enough for a hundred
	// concurrent tasks to meet, short beside a provider call.
	MaxWaitDefault = 20 * time.Millisecond
	// FlushersDefault lets two batches be written at once: one fills
	// while the other commits.
	FlushersDefault = 2
	// TimeoutDefault bounds one flush.
	TimeoutDefault = 10 * time.Second
)

// Config shapes a Batcher. Zero fields take the defaults, except
// MaxWait, whose zero is "flush at once" only when NoWait is set.
type Config struct {
	MaxRows  int
	MaxWait  time.Duration
	NoWait   bool
	Flushers int
	// Timeout bounds each flush; the flush runs apart from its callers'
	// contexts (a caller gone does not unwrite the rows of the others).
	Timeout time.Duration
	// Observe, when set, hears every flush's size and error.
	Observe func(rows int, err error)
}

func (c *Config) defaults() {
	if c.MaxRows == 0 {
		c.MaxRows = MaxRowsDefault
	}
	if c.MaxWait == 0 && !c.NoWait {
		c.MaxWait = MaxWaitDefault
	}
	if c.Flushers == 0 {
		c.Flushers = FlushersDefault
	}
	if c.Timeout == 0 {
		c.Timeout = TimeoutDefault
	}
}

// FlushFunc serves a batch: one result per request, in order, or an error
// for the whole batch (every caller gets it).
type FlushFunc[Req, Res any] func(ctx context.Context, reqs []Req) ([]Res, error)

// Batcher gathers requests of type Req into calls of a FlushFunc.
type Batcher[Req, Res any] struct {
	cfg   Config
	flush FlushFunc[Req, Res]
	slots chan struct{}

	mu   sync.Mutex
	open *pending[Req, Res]
}

// pending is a batch being gathered.
type pending[Req, Res any] struct {
	reqs []Req
	full chan struct{} // closed at MaxRows
	done chan struct{} // closed once res and err are set
	res  []Res
	err  error
}

// New returns a Batcher that serves batches with flush.
func New[Req, Res any](cfg Config, flush FlushFunc[Req, Res]) (*Batcher[Req, Res], error) {
	cfg.defaults()
	if cfg.MaxRows < 1 || cfg.MaxWait < 0 || cfg.Flushers < 1 || cfg.Timeout <= 0 {
		return nil, errors.New("batch: MaxRows and Flushers must be positive, MaxWait not negative, Timeout positive")
	}
	return &Batcher[Req, Res]{cfg: cfg, flush: flush, slots: make(chan struct{}, cfg.Flushers)}, nil
}

// Do adds req to the open batch and returns its result once the batch is
// written. It waits for the flush whatever ctx does: the row may be
// written by then, and the caller must know (ctx only supplies the
// flush's values, never its cancellation).
func (b *Batcher[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	b.mu.Lock()
	p := b.open
	lead := p == nil
	if lead {
		p = &pending[Req, Res]{full: make(chan struct{}), done: make(chan struct{})}
		b.open = p
	}
	i := len(p.reqs)
	p.reqs = append(p.reqs, req)
	if len(p.reqs) == b.cfg.MaxRows {
		close(p.full)
		b.open = nil // the next request opens a new batch
	}
	b.mu.Unlock()

	if lead {
		b.lead(ctx, p)
	} else {
		<-p.done
	}
	if p.err != nil {
		var zero Res
		return zero, p.err
	}
	return p.res[i], nil
}

// lead waits for company and a flush slot, then flushes p.
func (b *Batcher[Req, Res]) lead(ctx context.Context, p *pending[Req, Res]) {
	if b.cfg.MaxWait > 0 {
		t := time.NewTimer(b.cfg.MaxWait)
		select {
		case <-p.full:
		case <-t.C:
		}
		t.Stop()
	}
	b.slots <- struct{}{}
	defer func() { <-b.slots }()
	b.mu.Lock()
	if b.open == p {
		b.open = nil
	}
	reqs := p.reqs
	b.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Timeout)
	defer cancel()
	res, err := b.safeFlush(fctx, reqs)
	if err == nil && len(res) != len(reqs) {
		err = errors.New("batch: flush returned a result count unlike its request count")
	}
	if b.cfg.Observe != nil {
		b.cfg.Observe(len(reqs), err)
	}
	p.res, p.err = res, err
	close(p.done)
}

// safeFlush is flush with a panic turned into the batch's error: every
// caller waits for the batch, so none may be left waiting forever.
func (b *Batcher[Req, Res]) safeFlush(ctx context.Context, reqs []Req) (res []Res, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("batch: flush panicked: %v", r)
		}
	}()
	return b.flush(ctx, reqs)
}

// Pending is how many requests the open batch holds (for tests and
// metrics).
func (b *Batcher[Req, Res]) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open == nil {
		return 0
	}
	return len(b.open.reqs)
}
