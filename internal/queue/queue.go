// Package queue is the scheduling contract the API and the workers share:
// the asynq task types, their payloads (IDs only, never a token:
// ARCHITECTURE.md invariant 2), the queues, the task IDs, the rule that
// decides when a pre-save goes into Redis, and the stop keys that end
// running attempts. Both binaries build their Client from one Config
// (LoadConfig), so a task is queued with the same retries and deadline
// whichever process queues it. The worker runtime that executes the
// tasks lives in internal/jobs; this package links none of it.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// Task types.
const (
	// TypePresave runs one pre-save: every consented action on one provider.
	TypePresave = "presave:run"
	// TypeRevoke revokes a grant at the provider after our copy was
	// purged (its token row deleted).
	TypeRevoke = "token:revoke"
	// TypeRelay moves pre-saves due soon from PostgreSQL into the queues.
	TypeRelay = "maintenance:relay"
	// TypeSweep is the safety net: purges unneeded tokens, revives stuck pre-saves.
	TypeSweep = "maintenance:sweep"
)

// Queues. Pre-saves are queued per provider so one provider's trouble
// (rate limits, quota) never starves the other.
const (
	QueueSpotify     = "spotify"
	QueueYouTube     = "youtube"
	QueueAppleMusic  = "applemusic"
	QueueRevoke      = "revoke"
	QueueMaintenance = "maintenance"
)

// Queues lists every queue, the privacy work first.
var Queues = []string{QueueRevoke, QueueSpotify, QueueYouTube, QueueAppleMusic, QueueMaintenance}

// QueueFor is the queue of a provider's pre-saves.
func QueueFor(p providers.Name) string {
	switch p {
	case providers.YouTube:
		return QueueYouTube
	case providers.AppleMusic:
		return QueueAppleMusic
	}
	return QueueSpotify
}

// PresavePayload names a pre-save and the generation the task was made
// for. A task whose generation is older than the pre-save's is stale (the
// release moved, or the fan consented again) and does nothing.
//
// FanID and Provider (opaque IDs, never personal data) let the worker
// take the fan's grant lock before reading anything. Every task queued
// here names them; the worker still reads the row for a task that does
// not (queued by an older version).
type PresavePayload struct {
	PresaveID  uuid.UUID      `json:"presave_id"`
	Generation int            `json:"generation"`
	FanID      uuid.UUID      `json:"fan_id,omitzero"`
	Provider   providers.Name `json:"provider,omitempty"`
}

// RevokePayload names a token_revocations row.
type RevokePayload struct {
	RevocationID uuid.UUID `json:"revocation_id"`
}

// PresaveTaskID is the asynq TaskID of a pre-save's generation: enqueuing
// the same generation twice is harmless (ErrTaskIDConflict), and a new
// generation is never blocked by an archived old one.
func PresaveTaskID(id uuid.UUID, generation int) string {
	return fmt.Sprintf("presave:%s:%d", id, generation)
}

// PresaveTaskKey is the Redis key asynq keeps a pre-save's task under,
// whatever its state (asynq's internal/base.TaskKey): the key whose
// existence makes an enqueue with the same TaskID a conflict. The relay's
// rescue checks many at once with it; TestPresaveTaskKeyIsAsynqs enqueues
// through asynq and looks for this key, so an asynq upgrade that moves it
// fails that test rather than the rescue.
func PresaveTaskKey(p providers.Name, id uuid.UUID, generation int) string {
	return "asynq:{" + QueueFor(p) + "}:t:" + PresaveTaskID(id, generation)
}

// RevokeTaskID is the asynq TaskID of a revocation.
func RevokeTaskID(id uuid.UUID) string { return "revoke:" + id.String() }

// Client puts work into asynq: the one way the API and the workers queue
// a task. Build it with New.
type Client struct {
	cfg   Config
	st    *store.Store
	rdb   redis.UniversalClient
	asynq *asynq.Client
	insp  *asynq.Inspector
}

// New returns a Client that queues with cfg (defaults filled in,
// validated) on rdb, a go-redis client of the queues' database; st is
// where Schedule marks pre-saves enqueued. Closing rdb is the caller's:
// the client and inspector built on it leave it open.
func New(cfg Config, st *store.Store, rdb redis.UniversalClient) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rdb == nil {
		return nil, errors.New("queue: a Redis client is required")
	}
	return &Client{cfg: cfg, st: st, rdb: rdb,
		asynq: asynq.NewClientFromRedisClient(rdb), insp: asynq.NewInspectorFromRedisClient(rdb)}, nil
}

// Config is the configuration the client queues with.
func (c *Client) Config() Config { return c.cfg }

// Inspector is the asynq inspector on the queues' database.
func (c *Client) Inspector() *asynq.Inspector { return c.insp }

// DueSoon is the enqueue rule: a pre-save due at dueAt goes into Redis
// now when it is due within the window; one due later stays in
// PostgreSQL until the relay claims it in time.
func (c *Client) DueSoon(dueAt time.Time) bool { return time.Until(dueAt) <= c.cfg.Window }

// Schedule is called after a pre-save was created or changed: when it is
// due soon (DueSoon) it is marked enqueued and queued now; otherwise the
// relay will claim it in time. It reports whether it queued the task.
func (c *Client) Schedule(ctx context.Context, id uuid.UUID, generation int, dueAt time.Time) (bool, error) {
	if !c.DueSoon(dueAt) {
		return false, nil
	}
	d, ok, err := c.st.MarkDueEnqueued(ctx, id, generation)
	if err != nil || !ok {
		return false, err
	}
	if _, err := c.Enqueue(ctx, d); err != nil {
		return false, err
	}
	return true, nil
}

// Enqueue queues d's generation to run at its due time, the task naming
// the fan so the worker takes the grant lock first. It reports whether a
// task was created (false: it was already queued, which is success).
func (c *Client) Enqueue(ctx context.Context, d store.DuePresave) (bool, error) {
	payload, err := json.Marshal(PresavePayload{PresaveID: d.ID, Generation: d.Generation, FanID: d.FanID, Provider: d.Provider})
	if err != nil {
		return false, err
	}
	_, err = c.asynq.EnqueueContext(ctx, asynq.NewTask(TypePresave, payload),
		asynq.TaskID(PresaveTaskID(d.ID, d.Generation)), asynq.Queue(QueueFor(d.Provider)),
		asynq.ProcessAt(d.DueAt), asynq.MaxRetry(c.cfg.PresaveMaxRetry), asynq.Timeout(c.cfg.PresaveTimeout))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("queue: enqueue presave %s: %w", d.ID, err)
	}
	return true, nil
}

// EnqueueRevoke queues the revocation of a grant at its provider, reporting whether a task
// was created (false: already queued, which is success).
func (c *Client) EnqueueRevoke(ctx context.Context, revocationID uuid.UUID) (bool, error) {
	payload, err := json.Marshal(RevokePayload{RevocationID: revocationID})
	if err != nil {
		return false, err
	}
	_, err = c.asynq.EnqueueContext(ctx, asynq.NewTask(TypeRevoke, payload),
		asynq.TaskID(RevokeTaskID(revocationID)), asynq.Queue(QueueRevoke),
		asynq.MaxRetry(c.cfg.RevokeMaxRetry), asynq.Timeout(time.Minute))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("queue: enqueue revoke: %w", err)
	}
	return true, nil
}

// DropPresaveTask deletes a stale generation's task from the queue, if it
// is still waiting there. Not finding it is fine: the task also checks its
// generation when it runs.
func (c *Client) DropPresaveTask(id uuid.UUID, generation int, p providers.Name) error {
	err := c.insp.DeleteTask(QueueFor(p), PresaveTaskID(id, generation))
	if err == nil || errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	return fmt.Errorf("queue: drop presave task: %w", err)
}
