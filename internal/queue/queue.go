// Package jobs defines presave's background work: the asynq task types,
// their payloads (IDs only, never a token: ARCHITECTURE.md invariant 2),
// the queues, and the scheduling entry point shared by the API and the
// workers.
package jobs

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
	// TypePurge revokes a grant at the provider after its token row was deleted.
	TypePurge = "token:purge"
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
	QueuePurge       = "purge"
	QueueMaintenance = "maintenance"
)

// QueueFor is the queue of a provider's pre-saves.
func QueueFor(p providers.Name) string {
	if p == providers.YouTube {
		return QueueYouTube
	}
	return QueueSpotify
}

// PresavePayload names a pre-save and the generation the task was made
// for. A task whose generation is older than the pre-save's is stale (the
// release moved, or the fan consented again) and does nothing.
//
// FanID and Provider (opaque IDs, never personal data) let the worker
// take the fan's grant lock before reading anything; tasks queued before
// they existed carry neither, and the worker reads the row for them.
type PresavePayload struct {
	PresaveID  uuid.UUID      `json:"presave_id"`
	Generation int            `json:"generation"`
	FanID      uuid.UUID      `json:"fan_id,omitzero"`
	Provider   providers.Name `json:"provider,omitempty"`
}

// PurgePayload names a token_revocations row.
type PurgePayload struct {
	RevocationID uuid.UUID `json:"revocation_id"`
}

// PresaveTaskID is the asynq TaskID of a pre-save's generation: enqueuing
// the same generation twice is harmless (ErrTaskIDConflict), and a new
// generation is never blocked by an archived old one.
func PresaveTaskID(id uuid.UUID, generation int) string {
	return fmt.Sprintf("presave:%s:%d", id, generation)
}

// presaveTaskKey is the Redis key asynq keeps a pre-save's task under,
// whatever its state (asynq's internal/base.TaskKey): the key whose
// existence makes an enqueue with the same TaskID a conflict. The rescue
// checks many at once with it; TestPresaveTaskKeyIsAsynqs enqueues through
// asynq and looks for this key, so an asynq upgrade that moves it fails
// that test rather than the rescue.
func presaveTaskKey(p providers.Name, id uuid.UUID, generation int) string {
	return "asynq:{" + QueueFor(p) + "}:t:" + PresaveTaskID(id, generation)
}

// PurgeTaskID is the asynq TaskID of a revocation.
func PurgeTaskID(id uuid.UUID) string { return "purge:" + id.String() }

// Scheduler puts work into asynq. It is the one entry point the API and
// the relay use.
type Scheduler struct {
	Store     *store.Store
	Client    *asynq.Client
	Inspector *asynq.Inspector
	// Redis carries the stop keys of StopAttempts (nil: none are set).
	Redis redis.UniversalClient
	// Window is how far ahead work goes into Redis; pre-saves due later
	// stay in PostgreSQL until the relay claims them.
	Window time.Duration
	// PresaveMaxRetry caps asynq's retries of a pre-save task.
	PresaveMaxRetry int
	// PurgeMaxRetry caps retries of a purge (with backoff, they span days).
	PurgeMaxRetry int
	// PresaveTimeout is asynq's deadline for one pre-save attempt (0: 2
	// minutes). The worker also bounds each attempt itself.
	PresaveTimeout time.Duration
}

// Schedule is called after a pre-save was created or changed: when it is
// due within the window it is marked enqueued and queued now; otherwise
// the relay will claim it in time. It reports whether it queued the task.
func (s *Scheduler) Schedule(ctx context.Context, id uuid.UUID, generation int, p providers.Name, dueAt time.Time) (bool, error) {
	if time.Until(dueAt) > s.Window {
		return false, nil
	}
	d, ok, err := s.Store.MarkDueEnqueued(ctx, id, generation)
	if err != nil || !ok {
		return false, err
	}
	if _, err := s.enqueuePresave(ctx, d); err != nil {
		return false, err
	}
	return true, nil
}

// EnqueuePresave queues a pre-save generation to run at dueAt. Already
// queued (ErrTaskIDConflict) is success. The task does not name the fan,
// so the worker reads the row first; the scheduler's own paths use
// enqueuePresave with the fan.
func (s *Scheduler) EnqueuePresave(ctx context.Context, id uuid.UUID, generation int, p providers.Name, dueAt time.Time) error {
	_, err := s.enqueuePresave(ctx, store.DuePresave{ID: id, Generation: generation, Provider: p, DueAt: dueAt})
	return err
}

// EnqueueDue queues d's generation to run at its due time; with d.FanID
// set, the task names the fan so the worker takes the grant lock first.
// Already queued is success. The API uses it after recording a consent as
// enqueued in the consent transaction.
func (s *Scheduler) EnqueueDue(ctx context.Context, d store.DuePresave) error {
	_, err := s.enqueuePresave(ctx, d)
	return err
}

// enqueuePresave queues d's generation to run at its due time, reporting
// whether a task was created (false: it was already there).
func (s *Scheduler) enqueuePresave(ctx context.Context, d store.DuePresave) (bool, error) {
	id, generation, p, dueAt := d.ID, d.Generation, d.Provider, d.DueAt
	pl := PresavePayload{PresaveID: id, Generation: generation}
	if d.FanID != uuid.Nil {
		pl.FanID, pl.Provider = d.FanID, p
	}
	payload, err := json.Marshal(pl)
	if err != nil {
		return false, err
	}
	maxRetry := s.PresaveMaxRetry
	if maxRetry == 0 {
		maxRetry = 25
	}
	timeout := s.PresaveTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	_, err = s.Client.EnqueueContext(ctx, asynq.NewTask(TypePresave, payload),
		asynq.TaskID(PresaveTaskID(id, generation)), asynq.Queue(QueueFor(p)),
		asynq.ProcessAt(dueAt), asynq.MaxRetry(maxRetry), asynq.Timeout(timeout))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("jobs: enqueue presave %s: %w", id, err)
	}
	return true, nil
}

// EnqueuePurge queues the revocation of a grant. Already queued is success.
func (s *Scheduler) EnqueuePurge(ctx context.Context, revocationID uuid.UUID) error {
	_, err := s.enqueuePurge(ctx, revocationID)
	return err
}

// enqueuePurge is EnqueuePurge reporting whether a task was created.
func (s *Scheduler) enqueuePurge(ctx context.Context, revocationID uuid.UUID) (bool, error) {
	payload, err := json.Marshal(PurgePayload{RevocationID: revocationID})
	if err != nil {
		return false, err
	}
	maxRetry := s.PurgeMaxRetry
	if maxRetry == 0 {
		maxRetry = 40 // asynq's default backoff over 40 tries spans several days
	}
	_, err = s.Client.EnqueueContext(ctx, asynq.NewTask(TypePurge, payload),
		asynq.TaskID(PurgeTaskID(revocationID)), asynq.Queue(QueuePurge),
		asynq.MaxRetry(maxRetry), asynq.Timeout(time.Minute))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("jobs: enqueue purge: %w", err)
	}
	return true, nil
}

// DropPresaveTask deletes a stale generation's task from the queue, if it
// is still waiting there. Not finding it is fine: the task also checks its
// generation when it runs.
func (s *Scheduler) DropPresaveTask(id uuid.UUID, generation int, p providers.Name) error {
	if s.Inspector == nil {
		return nil
	}
	err := s.Inspector.DeleteTask(QueueFor(p), PresaveTaskID(id, generation))
	if err == nil || errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	return fmt.Errorf("jobs: drop presave task: %w", err)
}
