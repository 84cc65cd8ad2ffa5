package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/ratelimit"
	"github.com/presave/presave/internal/store"
)

// Stopping running attempts. A cancellation (withdraw, disconnect,
// account deletion, a cancelled release) commits in PostgreSQL, where a
// new attempt's start sees it. An attempt already running read its row
// before that, so the API also sets a stop key per cancelled running pre-save in
// Redis, holding the last generation that must stop, before it answers.
// The worker's pacing call before every provider action checks the key
// in the same script (ratelimit.Stop): no extra round trip, and no
// database read per action. At most the action already past its pacing
// call when the answer went out completes, and its result is recorded on
// the cancelled pre-save.

// stopTTL is how long a stop key lives. It only has to outlast attempts
// that started before the cancellation; Config.Validate keeps
// PRESAVE_TIMEOUT well below it.
const stopTTL = time.Hour

// StopKey is the Redis key that stops the running attempts of a pre-save
// on provider p: it holds the last generation that must stop, so an
// attempt of generation g stops once the key holds g or more. It carries
// the provider's limiter hash tag: the pacing script that checks it runs
// in that key's Cluster slot.
func StopKey(p providers.Name, id uuid.UUID) string {
	return ratelimit.Key(string(p), "stop:"+id.String())
}

// StopAttempts tells the running attempts of cancelled pre-saves to make
// no further provider call: one pipelined round trip for all of them.
// The caller answers the cancellation only after it returns. Only a
// pre-save that had an attempt holding its lease gets a key: any other
// attempt starts after the cancellation committed (its start waits for
// the cancellation's row lock) and finds the pre-save cancelled, so a
// cancelled release costs keys for its running attempts, not for all of
// its pre-saves.
func (c *Client) StopAttempts(ctx context.Context, cancelled []store.Superseded) error {
	pipe := c.rdb.Pipeline()
	for _, p := range cancelled {
		if p.WasRunning {
			pipe.Set(ctx, StopKey(p.Provider, p.PresaveID), strconv.Itoa(p.OldGeneration), stopTTL)
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("queue: stop attempts: %w", err)
	}
	return nil
}
