package jobs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/presave/presave/internal/queue"
)

// Deferral is a handler's answer "not now, and that is not a failure": a
// rate limit, a spent quota, a release not live yet, or another task of
// the same pre-save still running. asynq retries the task at Until
// without counting a retry (Config.IsFailure), so deferrals never exhaust
// MaxRetry; how long a pre-save may wait is bounded elsewhere (e.g.
// NOT_LIVE_GIVE_UP).
type Deferral struct {
	Reason string // rate_limited, quota, not_live, busy
	Until  time.Time
	Err    error
}

func (d *Deferral) Error() string {
	s := fmt.Sprintf("deferred (%s) until %s", d.Reason, d.Until.UTC().Format(time.RFC3339Nano))
	if d.Err != nil {
		s += ": " + d.Err.Error()
	}
	return s
}

func (d *Deferral) Unwrap() error { return d.Err }

// isFailure is asynq's IsFailure: deferrals are not failures.
func isFailure(err error) bool {
	var d *Deferral
	return !errors.As(err, &d)
}

// Backoff is a capped exponential backoff with jitter.
type Backoff struct {
	Base time.Duration // first delay
	Max  time.Duration // cap
}

// Delay returns the delay before retry n (0 is the first retry): "equal
// jitter", between half and all of min(Max, Base·2ⁿ), so a burst of
// failures spreads out instead of retrying in lockstep.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Max
	if n < 40 {
		if e := b.Base << n; e > 0 && e < b.Max {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(half+1)
}

// retryDelay is asynq's RetryDelayFunc: deferrals wait until their time
// (with a little jitter so a cooldown's end is not a thundering herd),
// revocations back off towards hours, everything else with the retry backoff.
func (w *Worker) retryDelay(n int, err error, t *asynq.Task) time.Duration {
	var d *Deferral
	if errors.As(err, &d) {
		wait := time.Until(d.Until)
		if wait < 0 {
			wait = 0
		}
		return wait + rand.N(wait/10+50*time.Millisecond)
	}
	if t != nil && t.Type() == queue.TypeRevoke {
		return w.cfg.RevokeBackoff.Delay(n)
	}
	return w.cfg.RetryBackoff.Delay(n)
}
