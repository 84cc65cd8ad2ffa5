// Package ratelimit paces calls to the music providers across every worker
// process: a GCRA limiter per provider in Redis (redis_rate's algorithm and
// keys, run in one script with the cooldown and stop checks), a shared
// cooldown that a provider's 429 sets for everybody, and a daily unit
// budget (YouTube's quota) counted per quota day.
//
// State lives in Redis only. Losing it (FLUSHALL) forgets pacing for a
// moment and a spent budget for the rest of the day; the provider's own
// 429/quota answers then take over, so nothing is lost, only re-learned.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Rate is a sustained rate with a burst, in events.
type Rate struct {
	// PerSecond is the sustained rate; <= 0 means unlimited.
	PerSecond float64
	// Burst is how many events may go at once after a quiet spell
	// (at least 1, and at least the largest n a caller asks for).
	Burst int
}

// limit converts r to redis_rate's integer form: Rate events per Period.
// Using a 1000 s period keeps three decimals of a fractional rate.
func (r Rate) limit() redis_rate.Limit {
	return redis_rate.Limit{
		Rate:   max(1, int(math.Round(r.PerSecond*1000))),
		Period: 1000 * time.Second,
		Burst:  max(1, r.Burst),
	}
}

// WaitError says a wait would exceed the caller's bound; the caller
// defers its work until Until instead of holding a worker slot.
type WaitError struct {
	Key   string
	Until time.Time
	// Cooldown is true when a shared cooldown (a provider's 429), not the
	// limiter's pacing, is what blocks.
	Cooldown bool
}

func (e *WaitError) Error() string {
	what := "rate limit"
	if e.Cooldown {
		what = "cooldown"
	}
	return fmt.Sprintf("ratelimit: %s %s until %s", e.Key, what, e.Until.Format(time.RFC3339Nano))
}

// Limiter paces named keys (one per provider). It is safe for concurrent
// use and shared by every worker through Redis.
type Limiter struct {
	rdb   redis.UniversalClient
	rates map[string]Rate
	// backoffBase and backoffMax bound Backoff's pauses.
	backoffBase, backoffMax time.Duration
}

// New returns a limiter over rdb with the given rates by key. Keys without
// a rate are unlimited (but still honour cooldowns). Backoff uses
// BackoffBaseDefault and BackoffMaxDefault until WithBackoff.
func New(rdb redis.UniversalClient, rates map[string]Rate) *Limiter {
	return &Limiter{rdb: rdb, rates: rates, backoffBase: BackoffBaseDefault, backoffMax: BackoffMaxDefault}
}

// WithBackoff sets Backoff's first pause and its cap (values ≤ 0 keep
// the defaults; a cap below the base is raised to it) and returns l.
func (l *Limiter) WithBackoff(base, limit time.Duration) *Limiter {
	if base > 0 {
		l.backoffBase = base
	}
	if limit > 0 {
		l.backoffMax = limit
	}
	l.backoffMax = max(l.backoffMax, l.backoffBase)
	return l
}

// Rate returns the configured rate of key.
func (l *Limiter) Rate(key string) Rate { return l.rates[key] }

func (l *Limiter) cooldownKey(key string) string { return Key(key, "cooldown") }

// Key names a Redis key of the limiter key's state: its rate, cooldown
// and backoff streak, and the stop keys a Wait on it checks. They share
// the hash tag {key}, so every script over them touches one slot of a
// Redis Cluster (a script across slots is refused there, CROSSSLOT).
func Key(key, name string) string { return "presave:{" + key + "}:" + name }

// Stop is a condition under which Wait admits nothing: the Redis key
// Key holds an integer of at least AtLeast. The API sets such a key when
// it cancels work (a pre-save's key, holding the last generation that
// must stop), so the check rides on the pacing call that precedes every
// provider call, at no extra round trip.
type Stop struct {
	// Key is named by the limiter key's Key, so the script stays in
	// one Cluster slot.
	Key     string
	AtLeast int64
}

// ErrStopped: a Stop condition holds; the caller must not make its call.
var ErrStopped = errors.New("ratelimit: stopped")

// Wait blocks until n events of key may happen, taking them from the
// shared budget, or returns a *WaitError when that would take longer than
// maxWait. It honours a cooldown set by Cooldown first, and before either
// returns ErrStopped when one of stops holds (checked again after every
// wait, so a stop set while waiting is seen before the call).
//
// The stop check, the cooldown check and the GCRA step are one script
// (waitScript), so a paced call costs one Redis round trip.
func (l *Limiter) Wait(ctx context.Context, key string, n int, maxWait time.Duration, stops ...Stop) error {
	deadline := time.Now().Add(maxWait)
	// Never sleep past the caller's own deadline: a wait it cannot
	// survive is a deferral, not a timeout.
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	r, limited := l.rates[key]
	limited = limited && r.PerSecond > 0
	lim := redis_rate.Limit{Period: time.Second} // rate 0: the script skips the GCRA step
	chunk := n
	if limited {
		lim = r.limit()
		// GCRA never admits more than the burst at once: n events beyond
		// it are taken a burst at a time, each paced like single events.
		chunk = min(n, lim.Burst)
	}
	keys := []string{l.cooldownKey(key), Key(key, "rate")}
	args := []any{lim.Burst, lim.Rate, lim.Period.Seconds(), chunk}
	for _, s := range stops {
		keys = append(keys, s.Key)
		args = append(args, s.AtLeast)
	}
	for left := n; ; {
		take := min(chunk, max(left, 1))
		args[3] = take
		v, err := waitScript.Run(ctx, l.rdb, keys, args...).Slice()
		if err != nil {
			return fmt.Errorf("ratelimit: %s: %w", key, err)
		}
		if len(v) != 2 {
			return fmt.Errorf("ratelimit: %s: unexpected script reply %v", key, v)
		}
		kind, _ := v[0].(int64)
		switch kind {
		case 0:
			if left -= take; left <= 0 {
				return nil
			}
			continue
		case 3:
			return ErrStopped
		}
		str, _ := v[1].(string)
		secs, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return fmt.Errorf("ratelimit: %s: %w", key, err)
		}
		wait, cooldown := time.Duration(secs*float64(time.Second)), kind == 1
		if wait <= 0 {
			wait = time.Millisecond
		}
		if time.Now().Add(wait).After(deadline) {
			return &WaitError{Key: key, Until: time.Now().Add(wait), Cooldown: cooldown}
		}
		if err := Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// waitScript is redis_rate's GCRA step (allowN) behind a stop check and
// a cooldown check: KEYS[1] the cooldown, KEYS[2] the GCRA state, KEYS[3…]
// stop keys; ARGV burst, rate (0: unlimited, no GCRA step), period
// (seconds), cost, then each stop key's threshold. It returns {3, ""}
// when a stop key holds at least its threshold, {0, ""} when the events
// are taken, {1, seconds} while the cooldown lasts, {2, seconds} until
// the rate admits them.
var waitScript = redis.NewScript(`
redis.replicate_commands()
for i = 3, #KEYS do
  local v = tonumber(redis.call("GET", KEYS[i]))
  if v and v >= tonumber(ARGV[i + 2]) then
    return {3, ""}
  end
end
local pttl = redis.call("PTTL", KEYS[1])
if pttl > 0 then
  return {1, tostring(pttl / 1000)}
end
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
if rate <= 0 then
  return {0, ""}
end
local period = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local emission_interval = period / rate
local increment = emission_interval * cost
local burst_offset = emission_interval * burst
local jan_1_2017 = 1483228800
local now = redis.call("TIME")
now = (now[1] - jan_1_2017) + (now[2] / 1000000)
local tat = redis.call("GET", KEYS[2])
if not tat then
  tat = now
else
  tat = tonumber(tat)
end
tat = math.max(tat, now)
local new_tat = tat + increment
local allow_at = new_tat - burst_offset
local diff = now - allow_at
if diff < 0 then
  return {2, tostring(-diff)}
end
local reset_after = new_tat - now
if reset_after > 0 then
  redis.call("SET", KEYS[2], new_tat, "EX", math.ceil(reset_after))
end
return {0, ""}`)

// Cooldown pauses key for every worker for d (a provider said 429 with
// Retry-After d). A longer cooldown already in place is kept.
func (l *Limiter) Cooldown(ctx context.Context, key string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	ms := d.Milliseconds()
	err := extendScript.Run(ctx, l.rdb, []string{l.cooldownKey(key)}, ms).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("ratelimit: set cooldown %s: %w", key, err)
	}
	return nil
}

// Backoff bounds by default: the first rate limit that names no wait
// pauses a key about BackoffBaseDefault; each further one soon after that
// pause ended (within the pause's length again) doubles it, up to
// BackoffMaxDefault (Google's "truncated exponential backoff" for
// rateLimitExceeded, whose examples stop at 32 or 64 s).
const (
	BackoffBaseDefault = time.Second
	BackoffMaxDefault  = time.Minute
)

// Backoff pauses key for every worker after a rate limit that named no
// wait (YouTube's 403 rateLimitExceeded has no Retry-After) and returns
// how long to wait. A rate limit seen while a pause is on (calls that
// were in flight when another worker's limit set it) is the same
// episode: it waits out that pause and grows nothing. One within a
// pause's length after the pause ended doubles the next pause; after
// that much calm the streak is over. The streak lives in Redis, so every
// worker shares it. The pause is the base × 2^(n−1), at most the cap
// (WithBackoff), with equal jitter (half fixed, half random) so workers do
// not come back in step. One round trip, and only after a rate limit.
func (l *Limiter) Backoff(ctx context.Context, key string) (time.Duration, error) {
	ms, err := backoffScript.Run(ctx, l.rdb, []string{Key(key, "backoff"), l.cooldownKey(key)},
		l.backoffBase.Milliseconds(), l.backoffMax.Milliseconds(), rand.Float64()).Int64()
	if err != nil {
		return l.backoffBase, fmt.Errorf("ratelimit: backoff %s: %w", key, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// backoffScript: KEYS[1] the streak count, KEYS[2] the key's pause;
// ARGV base and max (ms) and a jitter fraction in [0, 1). While a pause
// is on it returns what is left; else it counts the limit, sets the
// pause and keeps the streak for twice the pause.
var backoffScript = redis.NewScript(`
local left = redis.call("PTTL", KEYS[2])
if left > 0 then
  return left
end
local n = redis.call("INCR", KEYS[1])
local full = tonumber(ARGV[2])
if n <= 16 then
  full = math.min(full, tonumber(ARGV[1]) * 2 ^ (n - 1))
end
local d = math.max(1, math.floor(full / 2 + full / 2 * tonumber(ARGV[3])))
redis.call("SET", KEYS[2], "1", "PX", d)
redis.call("PEXPIRE", KEYS[1], 2 * d)
return d`)

// CooldownLeft returns how long key stays paused (0 when it is not).
func (l *Limiter) CooldownLeft(ctx context.Context, key string) (time.Duration, error) {
	d, err := l.rdb.PTTL(ctx, l.cooldownKey(key)).Result()
	if err != nil {
		return 0, err
	}
	return max(d, 0), nil
}

// extendScript sets KEYS[1] to expire in ARGV[1] ms unless it already
// expires later.
var extendScript = redis.NewScript(`
local left = redis.call("PTTL", KEYS[1])
if left < tonumber(ARGV[1]) then
  redis.call("SET", KEYS[1], "1", "PX", ARGV[1])
end
return left`)

// Sleep waits d, or less if ctx ends first (then it returns ctx.Err()).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Budget is a unit budget per period (YouTube's daily quota), counted in
// Redis by every worker.
type Budget struct {
	rdb   redis.UniversalClient
	key   string
	units int
	// period returns the name of the period containing t and when it ends.
	period func(t time.Time) (name string, end time.Time)
}

// NewBudget returns a budget of units per period; units <= 0 means
// unlimited.
func NewBudget(rdb redis.UniversalClient, key string, units int, period func(time.Time) (string, time.Time)) *Budget {
	return &Budget{rdb: rdb, key: "presave:budget:" + key, units: units, period: period}
}

// ErrBudgetSpent is wrapped by the error Take returns when the period's
// budget cannot cover the request.
var ErrBudgetSpent = errors.New("budget spent")

// SpentError says the budget is spent until ResetAt.
type SpentError struct {
	Key     string
	ResetAt time.Time
}

func (e *SpentError) Error() string {
	return fmt.Sprintf("ratelimit: %s budget spent until %s", e.Key, e.ResetAt.Format(time.RFC3339))
}

func (e *SpentError) Unwrap() error { return ErrBudgetSpent }

// Take reserves units from the current period, or returns a *SpentError
// (errors.Is ErrBudgetSpent) naming the reset time. It returns the period
// name to hand back to Refund.
func (b *Budget) Take(ctx context.Context, units int) (string, error) {
	name, end := b.period(time.Now())
	if b.units <= 0 || units <= 0 {
		return name, nil
	}
	k := b.key + ":" + name
	used, err := takeScript.Run(ctx, b.rdb, []string{k}, units, b.units, time.Until(end).Milliseconds()+int64(time.Hour/time.Millisecond)).Int64()
	if err != nil {
		return "", fmt.Errorf("ratelimit: budget %s: %w", b.key, err)
	}
	if used < 0 {
		return "", &SpentError{Key: b.key, ResetAt: end}
	}
	return name, nil
}

// Refund gives units back to the period name (the work used fewer than it
// reserved, e.g. a read found the action already in effect).
func (b *Budget) Refund(ctx context.Context, name string, units int) error {
	if b.units <= 0 || units <= 0 || name == "" {
		return nil
	}
	k := b.key + ":" + name
	return refundScript.Run(ctx, b.rdb, []string{k}, units).Err()
}

// Used returns the units used in the current period.
func (b *Budget) Used(ctx context.Context) (int, error) {
	name, _ := b.period(time.Now())
	v, err := b.rdb.Get(ctx, b.key+":"+name).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

// takeScript adds ARGV[1] to KEYS[1] unless that passes ARGV[2]; returns
// the new total, or -1 when refused. The key expires after its period.
var takeScript = redis.NewScript(`
local used = tonumber(redis.call("GET", KEYS[1]) or "0")
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then
  return -1
end
used = redis.call("INCRBY", KEYS[1], n)
redis.call("PEXPIRE", KEYS[1], ARGV[3])
return used`)

var refundScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
  local v = redis.call("DECRBY", KEYS[1], ARGV[1])
  if v < 0 then redis.call("SET", KEYS[1], "0", "KEEPTTL") end
end
return 0`)
