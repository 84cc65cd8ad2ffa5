package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/guard"
	"github.com/presave/presave/internal/providers"
)

// GuardState is where a release's campaign guard stands for one provider.
type GuardState string

// Guard states (see migration 007).
const (
	// GuardCanary: only the canary pre-saves may start.
	GuardCanary GuardState = "canary"
	// GuardOpen: everyone runs; the breaker watches.
	GuardOpen GuardState = "open"
	// GuardPaused: nothing new starts but the canary's probes; target
	// errors hold their pre-saves.
	GuardPaused GuardState = "paused"
)

// Pause causes.
const (
	PauseCanary  = "canary"
	PauseBreaker = "breaker"
	// PauseUnresolved: the release's codes were not found by
	// NOT_LIVE_GIVE_UP after it was due; resolving them lifts it.
	PauseUnresolved = "unresolved"
)

// Guard is a release's campaign guard for one provider.
type Guard struct {
	ReleaseID uuid.UUID
	Provider  providers.Name
	State     GuardState
	// Canary lists the canary pre-saves, once chosen (nil before).
	Canary []uuid.UUID
	// OpenedAt is when the drain was let through (the breaker counts
	// from it); nil before.
	OpenedAt *time.Time
	// Pause says why the guard is paused; nil unless it is.
	Pause *Pause
}

// Pause is why a guard paused: the decision's cause (canary or breaker),
// the action and error it saw, and the counts (Failed of Seen).
type Pause struct {
	At     time.Time
	Cause  string
	Action providers.Action
	Error  string
	Failed int
	Seen   int
}

// blockedByGuardSQL is the one spelling of "the guard lets this pre-save
// not start": its release's guard for its provider is not open and the
// pre-save is not one of the canary's. p names the pre-save row. A
// release without a guard row (none is missing since migration 007) is
// not blocked.
func blockedByGuardSQL(p string) string {
	return `EXISTS (SELECT 1 FROM release_guards g WHERE g.release_id = ` + p + `.release_id AND g.provider = ` + p + `.provider
		AND g.state <> 'open' AND NOT coalesce(` + p + `.id = ANY (g.canary_ids), false))`
}

// guardNotOpenSQL: the pre-save's guard is not open (canary or paused),
// so a target error holds it instead of failing it. p names the pre-save
// row.
func guardNotOpenSQL(p string) string {
	return `EXISTS (SELECT 1 FROM release_guards g WHERE g.release_id = ` + p + `.release_id AND g.provider = ` + p + `.provider
		AND g.state <> 'open')`
}

// holdsSQL is the condition under which an attempt's end with a target
// error holds its pre-save: the guard not open (blocked: and the
// pre-save not one of its canary). It reads the guard row FOR SHARE, so
// a resume (OpenGuard, which updates that row, then resets the held
// pre-saves in a later statement) and the hold are ordered: a hold
// decided before the resume commits is seen and reset by it; one after
// sees the guard open. Used only on that error path.
func holdsSQL(p string, blocked bool) string {
	cond := `g.state <> 'open'`
	if blocked {
		cond += ` AND NOT coalesce(` + p + `.id = ANY (g.canary_ids), false)`
	}
	return `EXISTS (SELECT 1 FROM release_guards g WHERE g.release_id = ` + p + `.release_id AND g.provider = ` + p + `.provider
		AND ` + cond + ` FOR SHARE)`
}

const guardColumns = `release_id, provider, state, canary_ids, opened_at, paused_at, pause_cause, pause_action,
	pause_error, pause_failed, pause_seen`

func scanGuard(row pgx.Row) (Guard, error) {
	var g Guard
	var (
		pausedAt      *time.Time
		cause, action *string
		perr          *string
		failed, seen  *int
	)
	if err := row.Scan(&g.ReleaseID, &g.Provider, &g.State, &g.Canary, &g.OpenedAt, &pausedAt, &cause, &action,
		&perr, &failed, &seen); err != nil {
		return Guard{}, err
	}
	if g.State == GuardPaused && pausedAt != nil {
		g.Pause = &Pause{At: *pausedAt, Cause: deref(cause), Action: providers.Action(deref(action)), Error: deref(perr)}
		if failed != nil {
			g.Pause.Failed = *failed
		}
		if seen != nil {
			g.Pause.Seen = *seen
		}
	}
	return g, nil
}

// ReleaseGuards reads a release's guards, by provider.
func (s *Store) ReleaseGuards(ctx context.Context, releaseID uuid.UUID) ([]Guard, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+guardColumns+` FROM release_guards WHERE release_id = $1 ORDER BY provider`, releaseID)
	if err != nil {
		return nil, fmt.Errorf("store: release guards: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Guard, error) { return scanGuard(r) })
	if err != nil {
		return nil, fmt.Errorf("store: release guards: %w", err)
	}
	return out, nil
}

// chooseCanaries picks the canary of every guard still in its canary
// without one whose release has pre-saves due within window: the
// release's canary fans first (those due within the window), then the
// first size pre-saves by due time. It runs in the relay's claim, before
// the claim, so the canary is claimed first. A release whose Spotify
// codes are not resolved yet gets no Spotify canary: its pre-saves wait.
// It returns how many canaries it chose.
func chooseCanaries(ctx context.Context, tx pgx.Tx, window time.Duration, size int) (int, error) {
	tag, err := tx.Exec(ctx, `
		UPDATE release_guards g SET canary_ids = ARRAY(
				SELECT c.id FROM presaves c
				WHERE c.release_id = g.release_id AND c.provider = g.provider AND c.status IN ('pending', 'enqueued')
				ORDER BY (c.fan_id = ANY (r.canary_fans) AND c.due_at <= now() + make_interval(secs => $1)) DESC, c.due_at, c.id
				LIMIT cardinality(r.canary_fans) + $2),
			updated_at = now()
		FROM releases r
		WHERE r.id = g.release_id AND g.state = 'canary' AND g.canary_ids IS NULL
		  AND NOT (g.provider = 'spotify' AND r.spotify_resolution = 'pending')
		  AND EXISTS (SELECT 1 FROM presaves d WHERE d.release_id = g.release_id AND d.provider = g.provider
		              AND d.status IN ('pending', 'enqueued') AND d.due_at <= now() + make_interval(secs => $1))`,
		window.Seconds(), size)
	return int(tag.RowsAffected()), err
}

// CanaryGuard is a guard whose canary has not let the drain through yet
// (or paused it), with its canary pre-saves as the verdict sees them.
type CanaryGuard struct {
	Guard   Guard
	Members []guard.Member
}

// UnsettledCanaries lists the guards whose canary is chosen and awaits a
// verdict: in their canary, or paused by it (a canary that finds its
// target after all lets the drain through). Bounded by the releases
// going live, on the release_guards_unsettled index. A release ID (not
// uuid.Nil) and provider restrict it to that guard.
func (s *Store) UnsettledCanaries(ctx context.Context, releaseID uuid.UUID, p providers.Name) ([]CanaryGuard, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+prefixed("g.", guardColumns)+`, p.actions, p.results, p.status, p.target_error
		FROM release_guards g LEFT JOIN presaves p ON p.id = ANY (g.canary_ids)
		WHERE g.canary_ids IS NOT NULL AND (g.state = 'canary' OR (g.state = 'paused' AND g.pause_cause = 'canary'))
		  AND ($1::uuid IS NULL OR (g.release_id = $1 AND g.provider = $2))
		ORDER BY g.release_id, g.provider`, nullUUID(releaseID), p)
	if err != nil {
		return nil, fmt.Errorf("store: unsettled canaries: %w", err)
	}
	defer rows.Close()
	var out []CanaryGuard
	for rows.Next() {
		var (
			actions []providers.Action
			results []byte
			status  *PresaveStatus
			target  *string
		)
		g, err := scanGuard(extraRow{rows, []any{&actions, &results, &status, &target}})
		if err != nil {
			return nil, fmt.Errorf("store: unsettled canaries: %w", err)
		}
		if n := len(out); n == 0 || out[n-1].Guard.ReleaseID != g.ReleaseID || out[n-1].Guard.Provider != g.Provider {
			out = append(out, CanaryGuard{Guard: g})
		}
		if status == nil {
			continue // no canary pre-saves (or they were deleted with their fan)
		}
		m, err := canaryMember(actions, results, *status, deref(target))
		if err != nil {
			return nil, fmt.Errorf("store: unsettled canaries: %w", err)
		}
		last := &out[len(out)-1]
		last.Members = append(last.Members, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unsettled canaries: %w", err)
	}
	return out, nil
}

// canaryMember is one canary pre-save as guard.Canary reads it.
func canaryMember(actions []providers.Action, results []byte, status PresaveStatus, target string) (guard.Member, error) {
	var rs map[providers.Action]ActionResult
	if err := json.Unmarshal(results, &rs); err != nil {
		return guard.Member{}, err
	}
	m := guard.Member{Actions: actions, Results: map[providers.Action]guard.Result{},
		Finished: status != PresavePending && status != PresaveEnqueued && status != PresaveRunning}
	for a, r := range rs {
		failed := r.Outcome == providers.OutcomeFailed
		m.Results[a] = guard.Result{OK: !failed, Failed: failed, Target: failed && r.Target, Reason: r.Reason}
	}
	m.TargetAction, m.TargetReason = SplitTargetError(target)
	return m, nil
}

// TargetError is how a target error is recorded on a pre-save
// (presaves.target_error): "action: reason".
func TargetError(a providers.Action, reason string) string { return string(a) + ": " + reason }

// SplitTargetError reads a TargetError back ("" and "" for none).
func SplitTargetError(s string) (providers.Action, string) {
	a, reason, _ := strings.Cut(s, ": ")
	return providers.Action(a), reason
}

// PauseGuard pauses the release's guard for p, from state from (canary
// or open), with why. openedAt, when not zero, is the opening the
// decision's evidence belongs to (the breaker's window): a guard opened
// again since (an operator's resume) is left alone, so an attempt that
// started before the resume cannot pause the release with the old
// evidence. It reports false when the guard was not so (another worker
// paused it first, or it moved on).
func (s *Store) PauseGuard(ctx context.Context, releaseID uuid.UUID, p providers.Name, from GuardState, openedAt time.Time, why Pause) (bool, error) {
	var opened *time.Time
	if !openedAt.IsZero() {
		opened = &openedAt
	}
	tag, err := s.pool.Exec(ctx, `
		UPDATE release_guards SET state = 'paused', paused_at = now(), pause_cause = $4, pause_action = $5,
			pause_error = $6, pause_failed = $7, pause_seen = $8, updated_at = now()
		WHERE release_id = $1 AND provider = $2 AND state = $3 AND ($9::timestamptz IS NULL OR opened_at = $9)`,
		releaseID, p, from, why.Cause, string(why.Action), why.Error, why.Failed, why.Seen, opened)
	if err != nil {
		return false, fmt.Errorf("store: pause guard: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Opened is what opening a guard did.
type Opened struct {
	Provider providers.Name
	// Resumed counts the held (or not-live waiting) pre-saves that run
	// again.
	Resumed int
}

// OpenGuard lets the release's drain through for p: the guard opens (the
// breaker counts afresh from now) and its held pre-saves run again, as
// pending at a new generation, with their target failures forgotten and
// every other result (what already succeeded) kept; so do the ones
// waiting to look again for a target that was not live (their queued
// retry, minutes away, goes stale), so a fixed release is delivered at
// once. breaker's pause. onlyCause, when not empty, opens the guard only from
// its canary or from a pause of that cause: the relay's canary verdict
// (PauseCanary) must not lift a breaker's pause. ok is false when the
// guard was open already or not in such a state.
func (s *Store) OpenGuard(ctx context.Context, releaseID uuid.UUID, p providers.Name, onlyCause string) (Opened, bool, error) {
	out := Opened{Provider: p}
	var ok bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE release_guards SET state = 'open', opened_at = now(), paused_at = NULL, pause_cause = NULL,
				pause_action = NULL, pause_error = NULL, pause_failed = NULL, pause_seen = NULL, updated_at = now()
			WHERE release_id = $1 AND provider = $2 AND state <> 'open'
			  AND ($3 = '' OR state = 'canary' OR pause_cause = $3)`, releaseID, p, onlyCause)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		ok = true
		tag, err = tx.Exec(ctx, `
			UPDATE presaves p SET status = 'pending', generation = p.generation + 1,
				results = `+withoutTargetFailures("p.results")+`,
				completed_at = NULL, enqueued_at = NULL, lease_until = NULL, target_error = NULL, last_error = NULL,
				updated_at = now()
			WHERE p.release_id = $1 AND p.provider = $2
			  AND (p.status = 'held' OR (p.status = 'enqueued' AND p.target_error IS NOT NULL))`, releaseID, p)
		out.Resumed = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return Opened{}, false, fmt.Errorf("store: open guard: %w", err)
	}
	return out, ok, nil
}

// withoutTargetFailures is the SQL expression of results (a pre-save's
// results column) without the actions that failed with a target error,
// which run again after a resume.
func withoutTargetFailures(results string) string {
	return `(SELECT coalesce(jsonb_object_agg(e.k, e.v), '{}'::jsonb) FROM jsonb_each(` + results + `) AS e (k, v)
		WHERE NOT coalesce((e.v->>'target')::boolean, false))`
}

// BreakerWindow counts the latest n attempt ends (finished, held, or
// deferred as not live) of the release's pre-saves at p since since (the
// guard's opening), and how many of them were target errors. Bounded by
// n on the presaves_release_ended index; it runs only when an attempt
// ends with a target error.
func (s *Store) BreakerWindow(ctx context.Context, releaseID uuid.UUID, p providers.Name, since time.Time, n int) (failed, seen int, err error) {
	err = s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE w.target_error IS NOT NULL), count(*) FROM (
			SELECT target_error FROM presaves
			WHERE release_id = $1 AND provider = $2 AND ended_at >= $3
			ORDER BY ended_at DESC LIMIT $4) w`, releaseID, p, since, n).Scan(&failed, &seen)
	if err != nil {
		return 0, 0, fmt.Errorf("store: breaker window: %w", err)
	}
	return failed, seen, nil
}

// PausedGuards counts paused guards by provider (every provider named,
// zero included), for the presave_release_paused gauge.
func (s *Store) PausedGuards(ctx context.Context) (map[providers.Name]int, error) {
	out := map[providers.Name]int{}
	for _, p := range providers.Names {
		out[p] = 0
	}
	rows, err := s.pool.Query(ctx, `SELECT provider, count(*) FROM release_guards WHERE state = 'paused' GROUP BY provider`)
	if err != nil {
		return nil, fmt.Errorf("store: paused guards: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p providers.Name
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("store: paused guards: %w", err)
		}
		out[p] = n
	}
	return out, rows.Err()
}

// ExpireHolds ends, as failed (partial when some action was done), up to
// limit pre-saves whose hold passed
// its deadline: held, or waiting behind a guard that is not open, and due
// more than holdMax ago. Each keeps its results and its reason (its
// target error when it has one), and every token nothing else needs is
// purged, as for a cancellation.
func (s *Store) ExpireHolds(ctx context.Context, holdMax time.Duration, limit int) (Cancelled, error) {
	var out Cancelled
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = s.closePresavesKeepingReason(ctx, tx, PresaveFailed, `id IN (
				SELECT id FROM presaves x WHERE x.status = 'held' AND x.due_at < now() - make_interval(secs => $1)
				UNION ALL
				SELECT id FROM presaves x WHERE x.status IN ('pending', 'enqueued') AND x.due_at < now() - make_interval(secs => $1)
				  AND `+guardNotOpenSQL("x")+`
				LIMIT $2)`, []any{holdMax.Seconds(), limit}, "hold_expired")
		return err
	})
	if err != nil {
		return Cancelled{}, fmt.Errorf("store: expire holds: %w", err)
	}
	return out, nil
}

// prefixed qualifies a comma-separated column list with prefix.
func prefixed(prefix, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
