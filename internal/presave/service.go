// Package presave holds the use cases every transport shares: each does
// its store write and the queue side effects that follow the commit, and
// refuses with an *Error (a kind and a code) that the transport maps to
// its own answer. The JSON API and the fan page call the same function.
package presave

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/store"
)

// Service is presave's use cases. Build it with New.
type Service struct {
	store          *store.Store
	queue          *queue.Client
	providers      registry.Set
	log            *slog.Logger
	consentVersion string
	consentLocales []string
	now            func() time.Time
	// zones remembers the zone names PostgreSQL accepted.
	zones sync.Map
}

// Options are what a Service works with.
type Options struct {
	Store     *store.Store
	Queue     *queue.Client
	Providers registry.Set
	// Log receives what goes wrong after a commit (a task not dropped, a
	// revocation not queued: all safety-netted, so logged, not returned).
	Log *slog.Logger
	// ConsentVersion is the consent wording fans agree to now.
	ConsentVersion string
	// ConsentLocales are the locales that wording exists in; none means
	// English only.
	ConsentLocales []string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// New returns the use cases.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	svc := &Service{store: o.Store.WithRevocable(o.Providers.Revocable), queue: o.Queue, providers: o.Providers, log: o.Log,
		consentVersion: o.ConsentVersion, consentLocales: o.ConsentLocales, now: o.Now}
	if len(svc.consentLocales) == 0 {
		svc.consentLocales = []string{DefaultConsentLocale}
	}
	return svc
}

// queueParallelism bounds the Redis calls made at once after a release
// moves or is cancelled.
const queueParallelism = 16

// Cancellation is what a withdrawal, disconnect, account deletion or
// release cancellation did.
type Cancellation struct {
	// Cancelled counts the pre-saves cancelled.
	Cancelled int
	// GrantsDeleted counts the stored grants deleted (nothing needed them
	// any more).
	GrantsDeleted int
	// Running counts the cancelled pre-saves that had an attempt under
	// way: each may still complete the one action it had started (its
	// result then shows on the pre-save), and makes no further call.
	Running int
}

func cancellation(c store.Cancelled) Cancellation {
	out := Cancellation{Cancelled: len(c.Presaves), GrantsDeleted: len(c.Purges)}
	for _, p := range c.Presaves {
		if p.WasRunning {
			out.Running++
		}
	}
	return out
}

// Withdraw cancels one of the fan's pre-saves and deletes its grant if
// nothing else needs it. ErrPresaveNotFound when it is not the fan's.
func (s *Service) Withdraw(ctx context.Context, fanID, presaveID uuid.UUID) (Cancellation, error) {
	c, err := s.store.WithdrawPresave(ctx, fanID, presaveID)
	if errors.Is(err, store.ErrNotFound) {
		return Cancellation{}, ErrPresaveNotFound
	}
	if err != nil {
		return Cancellation{}, err
	}
	s.afterCancel(ctx, c)
	return cancellation(c), nil
}

// Disconnect cancels the fan's open pre-saves on p and deletes the grant
// and the account link.
func (s *Service) Disconnect(ctx context.Context, fanID uuid.UUID, p providers.Name) (Cancellation, error) {
	c, err := s.store.Disconnect(ctx, fanID, p)
	if err != nil {
		return Cancellation{}, err
	}
	s.afterCancel(ctx, c)
	return cancellation(c), nil
}

// DeleteFan deletes everything about the fan, irreversibly. ErrFanGone
// when the fan is already gone.
func (s *Service) DeleteFan(ctx context.Context, fanID uuid.UUID) (Cancellation, error) {
	c, err := s.store.DeleteFan(ctx, fanID)
	if errors.Is(err, store.ErrNotFound) {
		return Cancellation{}, ErrFanGone
	}
	if err != nil {
		return Cancellation{}, err
	}
	s.afterCancel(ctx, c)
	return cancellation(c), nil
}

// CancelRelease cancels a release and its open pre-saves, deleting the
// grants nothing else needs. Cancelling a cancelled release changes
// nothing. ErrReleaseNotFound when there is no such release.
func (s *Service) CancelRelease(ctx context.Context, id uuid.UUID) (Cancellation, error) {
	c, err := s.store.CancelRelease(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Cancellation{}, ErrReleaseNotFound
	}
	if err != nil {
		return Cancellation{}, err
	}
	s.afterCancel(ctx, c)
	return cancellation(c), nil
}

// UpdateRelease stores a scheduled release's new fields; when its time
// changed, every pre-save it moved is queued anew (its stale task
// dropped). It returns the release and how many pre-saves moved. The
// store's ErrConflict (slug taken, or no longer scheduled) passes through.
//
// A move that leaves open pre-saves due after their grant expires
// (Horizon: Spotify's six months) is refused with
// undeliverable_presaves, naming how many, unless acceptUndeliverable:
// then those pre-saves become needs_reconnect, their tokens are purged
// at once (a grant that cannot deliver is not kept), and the fan sees
// that they must connect again. It returns how many moved and how many
// became needs_reconnect.
func (s *Service) UpdateRelease(ctx context.Context, old, r store.Release, acceptUndeliverable bool) (store.Release, int, int, error) {
	var lost []uuid.UUID
	if !r.SameTiming(old) {
		// Checked before the update, in its own read: a consent recorded
		// in between is checked at its callback against the new time.
		var err error
		if lost, err = s.undeliverable(ctx, r); err != nil {
			return store.Release{}, 0, 0, err
		}
	}
	if len(lost) > 0 && !acceptUndeliverable {
		what := fmt.Sprintf("%d pre-saves", len(lost))
		if len(lost) == 1 {
			what = "1 pre-save"
		}
		return store.Release{}, 0, 0, errorf(KindConflict, "undeliverable_presaves",
			"At the new time %s could not be delivered: the fans' access expires before. Send \"accept_undeliverable\": true to move the release anyway; those fans will be asked to connect again.", what)
	}
	out, moved, err := s.store.UpdateRelease(ctx, r)
	if err != nil {
		return store.Release{}, 0, 0, err
	}
	if len(lost) == 0 {
		s.reschedule(ctx, moved, nil)
		return out, len(moved), 0, nil
	}
	c, err := s.store.NeedReconnect(ctx, lost)
	if err != nil {
		s.reschedule(ctx, moved, nil)
		return store.Release{}, 0, 0, err
	}
	closed := map[uuid.UUID]bool{}
	for _, p := range c.Presaves {
		closed[p.PresaveID] = true
	}
	s.reschedule(ctx, moved, closed)
	s.afterCancel(ctx, c)
	return out, len(moved), len(c.Presaves), nil
}

// undeliverable lists the open pre-saves of r that, due at r's time in
// their fan's zone, would come after their grant's Horizon.
func (s *Service) undeliverable(ctx context.Context, r store.Release) ([]uuid.UUID, error) {
	open, err := s.store.OpenPresaves(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	var out []uuid.UUID
	for _, o := range open {
		prov, ok := s.providers.Get(o.Provider)
		if !ok || o.AuthorizedAt == nil {
			continue
		}
		due, err := r.DueAt(o.FanZone)
		if err != nil {
			return nil, err
		}
		if PastHorizon(prov, *o.AuthorizedAt, due) {
			out = append(out, o.ID)
		}
	}
	return out, nil
}

// reschedule drops the queued tasks of moved pre-saves' old generations
// and schedules the new ones. PostgreSQL already holds the truth: a stale
// task that could not be dropped does nothing when it runs (its
// generation is old), and a pre-save that could not be queued stays
// pending for the relay; so failures here are logged, not returned.
// Those in closed (ended since they moved) only lose their old task.
func (s *Service) reschedule(ctx context.Context, moved []store.Superseded, closed map[uuid.UUID]bool) {
	var g errgroup.Group
	g.SetLimit(queueParallelism)
	for _, m := range moved {
		g.Go(func() error {
			if err := s.queue.DropPresaveTask(m.PresaveID, m.OldGeneration, m.Provider); err != nil {
				s.log.WarnContext(ctx, "dropping a stale pre-save task", "presave_id", m.PresaveID, "err", err)
			}
			if closed[m.PresaveID] {
				return nil
			}
			if _, err := s.queue.Schedule(ctx, m.PresaveID, m.Generation, m.DueAt); err != nil {
				s.log.WarnContext(ctx, "scheduling a moved pre-save; the relay will queue it", "presave_id", m.PresaveID, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// afterCancel runs a cancellation's queue side effects: first, before
// the caller answers, it stops the attempts already running
// (queue.Client.StopAttempts); then it drops the cancelled pre-saves'
// queued tasks and queues the revocation of deleted grants. The last two
// are safety-netted (stale tasks do nothing; the sweeper re-queues
// pending revocations), so failures are logged.
func (s *Service) afterCancel(ctx context.Context, c store.Cancelled) {
	if err := s.queue.StopAttempts(ctx, c.Presaves); err != nil {
		s.log.ErrorContext(ctx, "stopping running attempts of cancelled pre-saves; each may run to its end", "presaves", len(c.Presaves), "err", err)
	}
	var g errgroup.Group
	g.SetLimit(queueParallelism)
	for _, m := range c.Presaves {
		if m.WasRunning {
			// Its task is being processed (asynq cannot delete an active
			// task); the stop key ends it.
			continue
		}
		g.Go(func() error {
			if err := s.queue.DropPresaveTask(m.PresaveID, m.OldGeneration, m.Provider); err != nil {
				s.log.WarnContext(ctx, "dropping a cancelled pre-save task", "presave_id", m.PresaveID, "err", err)
			}
			return nil
		})
	}
	for _, p := range c.Purges {
		if p.RevocationID == uuid.Nil {
			continue
		}
		g.Go(func() error {
			if _, err := s.queue.EnqueueRevoke(ctx, p.RevocationID); err != nil {
				s.log.WarnContext(ctx, "queueing a grant revocation; the sweeper will retry", "revocation_id", p.RevocationID, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
}
