package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/providers"
)

// PresaveStatus is a pre-save's lifecycle state.
type PresaveStatus string

// Pre-save statuses. Pending, enqueued and running are runnable; they and
// held are open: they still need the fan's token. The others are final.
const (
	PresavePending  PresaveStatus = "pending"
	PresaveEnqueued PresaveStatus = "enqueued"
	PresaveRunning  PresaveStatus = "running"
	// PresaveHeld: it failed with a target error while its release was
	// paused (or in its canary); results and token are kept until the
	// release resumes (it runs again), is cancelled, or HOLD_MAX passes.
	PresaveHeld      PresaveStatus = "held"
	PresaveDone      PresaveStatus = "done"
	PresavePartial   PresaveStatus = "partial"
	PresaveFailed    PresaveStatus = "failed"
	PresaveCancelled PresaveStatus = "cancelled"
	// PresaveNeedsReconnect: the release moved past the grant's expiry;
	// the token is gone and the fan must connect again to keep it.
	PresaveNeedsReconnect PresaveStatus = "needs_reconnect"
)

// openStatuses is the SQL list of the open statuses (Open), for
// statements that select or change open pre-saves: its one spelling.
const openStatuses = `('pending', 'enqueued', 'running', 'held')`

// runnableStatuses is the SQL list of the runnable statuses (Runnable).
const runnableStatuses = `('pending', 'enqueued', 'running')`

// Open reports whether the pre-save is not over: it still needs the
// fan's token and may yet run.
func (s PresaveStatus) Open() bool { return s.Runnable() || s == PresaveHeld }

// Runnable reports whether the pre-save is waiting for or in an attempt.
func (s PresaveStatus) Runnable() bool {
	return s == PresavePending || s == PresaveEnqueued || s == PresaveRunning
}

// ActionResult is what happened to one consented action.
type ActionResult struct {
	Outcome providers.Outcome `json:"outcome"` // ok | already | failed
	Reason  string            `json:"reason,omitempty"`
	// Target marks a failure caused by the release's target (not live,
	// not found, forbidden), which the campaign guard counts and a
	// resume retries.
	Target bool      `json:"target,omitempty"`
	At     time.Time `json:"at"`
}

// Presave is one fan's pre-save of one release on one provider, with its
// consent record.
type Presave struct {
	ID        uuid.UUID
	FanID     uuid.UUID
	ReleaseID uuid.UUID
	Provider  providers.Name
	// AccountID is the provider account the fan consented with; the
	// pre-save runs only with a grant of that account. Empty for a
	// pre-save recorded before accounts were kept per pre-save whose fan
	// had no link left.
	AccountID      string
	Actions        []providers.Action
	ConsentedAt    time.Time
	ConsentVersion string
	// ConsentLocale is the locale of the consent wording ("en", "ja").
	ConsentLocale  string
	FanZone        string
	ClientIPPrefix *netip.Prefix
	DueAt          time.Time
	Generation     int
	Status         PresaveStatus
	Results        map[providers.Action]ActionResult
	Attempts       int
	LastError      string
	EnqueuedAt     *time.Time
	StartedAt      *time.Time
	CompletedAt    *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// OwnPlaylistID is the fan's playlist presave created for
	// add_to_my_playlist, once it exists (SetOwnPlaylist).
	OwnPlaylistID string
}

const presaveColumns = `id, fan_id, release_id, provider, actions, consented_at, consent_version, fan_zone,
	client_ip_prefix, due_at, generation, status, results, attempts, last_error, enqueued_at, started_at,
	completed_at, created_at, updated_at, account_id, own_playlist_id, consent_locale`

func scanPresave(row pgx.Row) (Presave, error) {
	var p Presave
	var results []byte
	var lastErr, account, ownPlaylist *string
	err := row.Scan(&p.ID, &p.FanID, &p.ReleaseID, &p.Provider, &p.Actions, &p.ConsentedAt, &p.ConsentVersion, &p.FanZone,
		&p.ClientIPPrefix, &p.DueAt, &p.Generation, &p.Status, &results, &p.Attempts, &lastErr, &p.EnqueuedAt,
		&p.StartedAt, &p.CompletedAt, &p.CreatedAt, &p.UpdatedAt, &account, &ownPlaylist, &p.ConsentLocale)
	if err != nil {
		return Presave{}, notFound(err)
	}
	p.LastError, p.AccountID, p.OwnPlaylistID = deref(lastErr), deref(account), deref(ownPlaylist)
	if err := json.Unmarshal(results, &p.Results); err != nil {
		return Presave{}, fmt.Errorf("results: %w", err)
	}
	return p, nil
}

// Presave reads a pre-save by ID.
func (s *Store) Presave(ctx context.Context, id uuid.UUID) (Presave, error) {
	p, err := scanPresave(s.pool.QueryRow(ctx, `SELECT `+presaveColumns+` FROM presaves WHERE id = $1`, id))
	if err != nil {
		return Presave{}, fmt.Errorf("store: presave: %w", err)
	}
	return p, nil
}

// The worker's view of a pre-save's lifecycle. Every write is conditioned
// on the pre-save's ID AND generation: a reschedule, re-consent or
// cancellation that bumped the generation meanwhile always wins, and the
// stale task's write does nothing.

// LeasedError means another attempt of the pre-save is running and holds
// its lease until Until: the caller should try again after that.
type LeasedError struct{ Until time.Time }

func (e *LeasedError) Error() string {
	return "store: presave is running elsewhere until " + e.Until.Format(time.RFC3339)
}

// whyNotStarted explains a start that matched no row: a *LeasedError when
// another attempt of the generation holds the lease, or another attempt
// holds the fan's grant, or the start lost a race and may be tried again
// at once; a *NotDueError when the pre-save is runnable but due later
// than now + early; ErrHeldBack when the release's guard holds it back;
// nil when the task is stale (or, fan set, not that fan's). It only runs
// on those rare paths.
func (s *Store) whyNotStarted(ctx context.Context, id uuid.UUID, generation int, fan uuid.UUID, early time.Duration) error {
	var (
		status     string
		until      *time.Time
		dueAt      time.Time
		now        time.Time
		blocked    bool
		grantUntil *time.Time
	)
	err := s.pool.QueryRow(ctx, `
		SELECT p.status, p.lease_until, p.due_at, now(), `+blockedByGuardSQL("p")+`,
			CASE WHEN t.lease_until >= now() THEN least(t.lease_until, now() + interval '2 seconds') END
		FROM presaves p LEFT JOIN provider_tokens t ON t.fan_id = p.fan_id AND t.provider = p.provider
			AND t.account_id IS NOT DISTINCT FROM p.account_id
		WHERE p.id = $1 AND p.generation = $2 AND ($3::uuid IS NULL OR p.fan_id = $3)`, id, generation, nullUUID(fan)).
		Scan(&status, &until, &dueAt, &now, &blocked, &grantUntil)
	runnable := status == string(PresaveEnqueued) || (status == string(PresaveRunning) && (until == nil || until.Before(now)))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("store: start presave: %w", err)
	case status == string(PresaveRunning) && until != nil && !until.Before(now):
		return &LeasedError{Until: *until}
	case blocked && (status == string(PresaveEnqueued) || status == string(PresaveRunning)):
		return ErrHeldBack
	case early > 0 && dueAt.After(now.Add(early)) && runnable:
		return &NotDueError{DueAt: dueAt}
	case runnable && grantUntil != nil:
		// Another attempt runs on the fan's grant (another pre-save, or
		// an older generation of this one); it usually ends within a
		// second or two.
		return &LeasedError{Until: *grantUntil}
	case runnable:
		// Startable now: the start lost a race (the grant was let go or
		// the row changed meanwhile). Try again at once.
		return &LeasedError{Until: now}
	}
	return nil
}

// ErrHeldBack means the pre-save's release is in its canary or paused
// for its provider, and the pre-save is not one of the canary: nothing
// was started. The caller puts it back to pending (PostponePresave); the
// relay claims it once the guard opens.
var ErrHeldBack = errors.New("store: the release's campaign guard holds this pre-save back")

// NotDueError means the pre-save is runnable but not due yet (its release
// moved later after the task was queued): nothing was started.
type NotDueError struct{ DueAt time.Time }

func (e *NotDueError) Error() string {
	return "store: presave is not due until " + e.DueAt.Format(time.RFC3339)
}

// Attempt is what one attempt at a pre-save works with, read by the same
// statement that starts it.
type Attempt struct {
	// Presave is the row, marked running.
	Presave Presave
	// ReleaseUpdatedAt names the version of the pre-save's release, so a
	// cached copy can be used without reading the release again.
	ReleaseUpdatedAt time.Time
	// Token is the fan's grant at the pre-save's provider, opened. When
	// TokenErr is set there is none: ErrNotFound when the row was purged,
	// otherwise it could not be opened.
	Token    Token
	TokenErr error
	// Guard is the state of the release's guard for the provider (empty
	// without one), GuardOpenedAt when it opened, and Canary whether the
	// pre-save is one of its canary.
	Guard         GuardState
	GuardOpenedAt time.Time
	Canary        bool
}

// attemptColumns are presaveColumns qualified with the CTE's name, since
// the join below has columns of the same names.
var attemptColumns = prefixed("p.", presaveColumns)

// Start names one attempt to begin (BeginAttempts).
type Start struct {
	ID         uuid.UUID
	Generation int
	// Fan is the pre-save's fan (the task's payload names it): only a
	// pre-save of that fan starts.
	Fan uuid.UUID
}

// Started is what BeginAttempts did for one Start: OK with its Attempt,
// or not OK and Err nil for a stale task, or Err (a *LeasedError, a
// *NotDueError, ErrHeldBack, or the error reading why).
type Started struct {
	Attempt Attempt
	OK      bool
	Err     error
}

// BeginAttempt is BeginAttempts for one attempt.
func (s *Store) BeginAttempt(ctx context.Context, id uuid.UUID, generation int, fan uuid.UUID, lease, early time.Duration) (Attempt, bool, error) {
	out, err := s.BeginAttempts(ctx, lease, early, []Start{{ID: id, Generation: generation, Fan: fan}})
	if err != nil {
		return Attempt{}, false, err
	}
	return out[0].Attempt, out[0].OK, out[0].Err
}

// startableSQL is the condition under which the pre-save row p starts:
// due by now + $5 seconds, enqueued (or running with a lapsed lease), not
// held back by its release's guard.
func startableSQL(p string) string {
	return p + `.due_at <= now() + make_interval(secs => $5)
		AND (` + p + `.status = 'enqueued' OR (` + p + `.status = 'running' AND (` + p + `.lease_until IS NULL OR ` + p + `.lease_until < now())))
		AND NOT ` + blockedByGuardSQL(p)
}

// beginStatement starts the attempts named by the arrays $1 (ID), $2
// (generation) and $3 (fan), with leases of $4 seconds, and reads what
// each needs; see BeginAttempts. Each UPDATE finds its rows by "id = ANY
// ($1)", so the primary key is the only sensible plan whatever the
// statistics: joined to the arrays, the planner was free to hash them
// and scan every pre-save, evaluating the grant's subquery on each (at
// 20,000 open pre-saves, 40 ms a batch). g takes each grant's lease for the
// pre-save that starts on it (one per grant: an UPDATE changes a row
// once, however many pre-saves of the batch join it); p starts the
// pre-saves whose grant g leased, and those without a grant of their
// account (they fail for it). A grant whose lease has not lapsed is
// skipped, whoever holds it (an older generation of the same pre-save
// too): a concurrent batch waits for its row lock, then re-checks the
// lease it wrote.
var beginStatement = `
		WITH x AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[]) AS x(x_id, x_generation, x_fan)),
		g AS (
			UPDATE provider_tokens t SET leased_by = s.id, lease_until = now() + make_interval(secs => $4)
			FROM presaves s
			WHERE s.id = ANY ($1::uuid[]) AND (s.id, s.generation, s.fan_id) IN (SELECT * FROM x) AND ` + startableSQL("s") + `
			  AND t.fan_id = s.fan_id AND t.provider = s.provider AND t.account_id IS NOT DISTINCT FROM s.account_id
			  AND (t.lease_until IS NULL OR t.lease_until < now())
			RETURNING t.leased_by),
		p AS (
			UPDATE presaves SET status = 'running', attempts = attempts + 1, started_at = now(),
				lease_until = now() + make_interval(secs => $4), updated_at = now()
			WHERE id = ANY ($1::uuid[]) AND (id, generation, fan_id) IN (SELECT * FROM x) AND ` + startableSQL("presaves") + `
			  AND (id IN (SELECT leased_by FROM g) OR NOT EXISTS (SELECT 1 FROM provider_tokens n
				WHERE n.fan_id = presaves.fan_id AND n.provider = presaves.provider
				  AND n.account_id IS NOT DISTINCT FROM presaves.account_id))
			RETURNING ` + prefixed("presaves.", presaveColumns) + `)
		SELECT ` + attemptColumns + `, r.updated_at,
			t.key_id, t.refresh_sealed, t.access_sealed, t.access_expires_at, t.scopes, t.authorized_at, t.created_at, t.rotated_at,
			t.storefront, g.state, g.opened_at, coalesce(p.id = ANY (g.canary_ids), false)
		FROM p LEFT JOIN releases r ON r.id = p.release_id
		LEFT JOIN provider_tokens t ON t.fan_id = p.fan_id AND t.provider = p.provider
			AND t.account_id IS NOT DISTINCT FROM p.account_id
		LEFT JOIN release_guards g ON g.release_id = p.release_id AND g.provider = p.provider`

// releaseGrantSQL is a CTE body giving back the grant lease held by the
// attempt of the pre-save whose ID is the SQL expression id, whatever its
// generation now (an attempt whose pre-save moved on lets go too).
func releaseGrantSQL(id string) string {
	return `UPDATE provider_tokens t SET leased_by = NULL, lease_until = NULL FROM presaves l
		WHERE l.id = ` + id + ` AND t.fan_id = l.fan_id AND t.provider = l.provider AND t.leased_by = l.id`
}

// BeginAttempts starts attempts, in one statement however many: each
// pre-save is marked running (attempts+1, started_at = now) with its
// lease taken for lease (the attempt's time limit plus bookkeeping), and
// the version of its release and the fan's sealed grant are read with
// it, and the lease of the fan's grant taken (one attempt per grant at a
// time). A pre-save starts only for the fan named and when due by now +
// early (PostgreSQL's clock).
// Each Start gets its Started, in order: not OK without error for a
// stale task (the pre-save is not enqueued, nor running with a lapsed
// lease, at that generation: every path that queues a task marks the row
// enqueued first); a *LeasedError when another attempt holds its lease or
// its grant's (a Start repeated in one batch, or two of one fan's, too:
// the later ones); a *NotDueError when due
// later (nothing changed); ErrHeldBack when the release's guard holds it
// back. The error is for the whole batch (nothing started).
func (s *Store) BeginAttempts(ctx context.Context, lease, early time.Duration, starts []Start) ([]Started, error) {
	ids, gens, fans := make([]uuid.UUID, len(starts)), make([]int, len(starts)), make([]uuid.UUID, len(starts))
	for i, st := range starts {
		ids[i], gens[i], fans[i] = st.ID, st.Generation, st.Fan
	}
	rows, err := s.pool.Query(ctx, beginStatement, ids, gens, fans, lease.Seconds(), early.Seconds())
	if err != nil {
		return nil, fmt.Errorf("store: begin attempts: %w", err)
	}
	began := map[uuid.UUID]Attempt{}
	for rows.Next() {
		a, err := s.scanAttempt(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: begin attempts: %w", err)
		}
		began[a.Presave.ID] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: begin attempts: %w", err)
	}
	out := make([]Started, len(starts))
	for i, st := range starts {
		if a, ok := began[st.ID]; ok {
			// The first Start of a pre-save has it; a repeat finds it
			// leased below.
			delete(began, st.ID)
			out[i] = Started{Attempt: a, OK: true}
			continue
		}
		out[i].Err = s.whyNotStarted(ctx, st.ID, st.Generation, st.Fan, early)
	}
	return out, nil
}

// scanAttempt reads one row of beginStatement. The joins are LEFT: the
// row was started whatever they find, so it is returned whatever they
// find.
func (s *Store) scanAttempt(row pgx.Row) (Attempt, error) {
	var (
		a                     Attempt
		relUpdated            *time.Time
		keyID                 *string
		refresh, access       []byte
		expiry, authorized    *time.Time
		tokCreated, tokRotate *time.Time
		scopes                []string
		storefront            *string
		guardState            *GuardState
		guardOpened           *time.Time
	)
	p, err := scanPresave(extraRow{row, []any{&relUpdated, &keyID, &refresh, &access, &expiry, &scopes, &authorized,
		&tokCreated, &tokRotate, &storefront, &guardState, &guardOpened, &a.Canary}})
	if err != nil {
		return Attempt{}, err
	}
	a.Presave = p
	if relUpdated != nil {
		a.ReleaseUpdatedAt = *relUpdated
	}
	if guardState != nil {
		a.Guard = *guardState
	}
	if guardOpened != nil {
		a.GuardOpenedAt = *guardOpened
	}
	if keyID == nil {
		a.TokenErr = fmt.Errorf("store: token: %w", ErrNotFound)
		return a, nil
	}
	// The same opening as Token, on the columns read above.
	t := Token{FanID: p.FanID, Provider: p.Provider, KeyID: *keyID, Scopes: scopes, RotatedAt: tokRotate, Storefront: deref(storefront)}
	if authorized != nil {
		t.AuthorizedAt = *authorized
	}
	if tokCreated != nil {
		t.CreatedAt = *tokCreated
	}
	a.Token, a.TokenErr = s.openSealed(t, refresh, access, expiry)
	return a, nil
}

// openSealed opens the sealed halves of t's row. On failure the token
// keeps the row's identity (key, authorization) without any secret, so
// the caller can purge exactly that row.
func (s *Store) openSealed(t Token, refresh, access []byte, expiry *time.Time) (Token, error) {
	rt, err := s.ring.Open(refresh, tokenOwner(t.FanID, t.Provider, "refresh"))
	if err != nil {
		return t, openError("refresh", t.KeyID, err)
	}
	opened := t
	opened.RefreshToken = string(rt)
	if access != nil {
		at, err := s.ring.Open(access, tokenOwner(t.FanID, t.Provider, "access"))
		if err != nil {
			return t, openError("access", t.KeyID, err)
		}
		opened.AccessToken = string(at)
		if expiry != nil {
			opened.Expiry = *expiry
		}
	}
	return opened, nil
}

// extraRow scans further columns after the ones its caller asks for, so
// a scanner of one table (scanPresave) can read a joined row.
type extraRow struct {
	pgx.Row
	extra []any
}

func (r extraRow) Scan(dest ...any) error {
	return r.Row.Scan(append(dest, r.extra...)...)
}

// Requeue is a running pre-save handed back to its queue.
type Requeue struct {
	ID         uuid.UUID
	Generation int
	// LastError is the error that made it wait.
	LastError string
	// Results of the actions the attempt completed, merged per action,
	// so the retry skips them.
	Results map[providers.Action]ActionResult
	// TargetError, when set (TargetError), says the attempt ended
	// waiting for its target (not live yet): the end counts for the
	// breaker, and while the release's guard holds the pre-save back
	// (not open, and not one of the canary) it is held instead.
	TargetError string
	// GuardOpenedAt is when the release's guard had opened as the
	// attempt started (zero: it was not open).
	GuardOpenedAt time.Time
}

// Requeued is what RequeuePresave did.
type Requeued struct {
	// Applied is false when the generation moved on (nothing written).
	Applied bool
	// Held: the pre-save is held, not queued; its task ends.
	Held bool
	// Reopened: the guard was opened again (resumed) since the attempt
	// started: what it waited for may be fixed, so it should look again
	// at once rather than after its deferral.
	Reopened bool
}

// RequeuePresave hands a running pre-save back to its queue (its task will
// be retried): status enqueued, or held (see Requeue.TargetError). The
// attempt's grant lease is given back whatever the generation.
func (s *Store) RequeuePresave(ctx context.Context, r Requeue) (Requeued, error) {
	b, err := marshalResults(r.Results)
	if err != nil {
		return Requeued{}, err
	}
	var status PresaveStatus
	var opened *time.Time
	err = s.pool.QueryRow(ctx, `
		WITH g AS (`+releaseGrantSQL("$1")+`)
		UPDATE presaves SET
			status = CASE WHEN $5::text IS NOT NULL AND `+holdsSQL("presaves", true)+` THEN 'held' ELSE 'enqueued' END,
			results = results || $4::jsonb, last_error = NULLIF($3, ''), lease_until = NULL,
			target_error = CASE WHEN $5::text IS NULL THEN target_error ELSE $5 END,
			ended_at = CASE WHEN $5::text IS NULL THEN ended_at ELSE now() END,
			updated_at = now()
		WHERE id = $1 AND generation = $2 AND status IN ('enqueued', 'running')
		RETURNING status, (SELECT g.opened_at FROM release_guards g
			WHERE g.release_id = presaves.release_id AND g.provider = presaves.provider AND g.state = 'open')`,
		r.ID, r.Generation, r.LastError, b, nullable(r.TargetError)).Scan(&status, &opened)
	if errors.Is(err, pgx.ErrNoRows) {
		return Requeued{}, nil
	}
	if err != nil {
		return Requeued{}, fmt.Errorf("store: requeue presave: %w", err)
	}
	reopened := opened != nil && opened.After(r.GuardOpenedAt)
	return Requeued{Applied: true, Held: status == PresaveHeld, Reopened: reopened}, nil
}

// OpenPresave is what is left to do of one open pre-save, for planning a
// release's drain.
type OpenPresave struct {
	ID       uuid.UUID
	Provider providers.Name
	FanZone  string
	// Remaining are the consented actions without a result yet.
	Remaining []providers.Action
	DueAt     time.Time
	// AuthorizedAt is when the grant the pre-save would run with was
	// authorized; nil when none is stored (it would fail reconnect_required).
	AuthorizedAt *time.Time
	// OwnPlaylist: the fan's playlist for add_to_my_playlist exists already.
	OwnPlaylist bool
}

// OpenPresaves lists the release's open pre-saves with what is left to
// do. It reads every one (an operator's occasional question, bounded by
// the release's size, on the presaves_release index).
func (s *Store) OpenPresaves(ctx context.Context, releaseID uuid.UUID) ([]OpenPresave, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT p.id, p.provider, p.fan_zone, ARRAY(SELECT a FROM unnest(p.actions) a WHERE NOT p.results ? a),
			p.due_at, t.authorized_at, p.own_playlist_id IS NOT NULL
		FROM presaves p
		LEFT JOIN provider_tokens t ON t.fan_id = p.fan_id AND t.provider = p.provider
			AND t.account_id IS NOT DISTINCT FROM p.account_id
		WHERE p.release_id = $1 AND p.status IN `+openStatuses, releaseID)
	if err != nil {
		return nil, fmt.Errorf("store: open presaves: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OpenPresave, error) {
		var o OpenPresave
		err := r.Scan(&o.ID, &o.Provider, &o.FanZone, &o.Remaining, &o.DueAt, &o.AuthorizedAt, &o.OwnPlaylist)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: open presaves: %w", err)
	}
	return out, nil
}

// NeedingReconnect lists the providers on which the fan's pre-save of
// the release is needs_reconnect.
func (s *Store) NeedingReconnect(ctx context.Context, fanID, releaseID uuid.UUID) ([]providers.Name, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT provider FROM presaves WHERE fan_id = $1 AND release_id = $2 AND status = 'needs_reconnect' ORDER BY provider`,
		fanID, releaseID)
	if err != nil {
		return nil, fmt.Errorf("store: needing reconnect: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[providers.Name])
	if err != nil {
		return nil, fmt.Errorf("store: needing reconnect: %w", err)
	}
	return out, nil
}

// SetOwnPlaylist records the fan's playlist an attempt found or created
// for add_to_my_playlist, before it adds anything: a later attempt
// (after a crash, a retry) adds to that one instead of looking again.
// The first recorded ID stays.
func (s *Store) SetOwnPlaylist(ctx context.Context, id uuid.UUID, playlistID string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE presaves SET own_playlist_id = $2, updated_at = now()
		WHERE id = $1 AND own_playlist_id IS NULL`, id, playlistID)
	if err != nil {
		return fmt.Errorf("store: set own playlist: %w", err)
	}
	return nil
}

// RecordLateResults ends an attempt whose pre-save was cancelled while it
// ran: it records the results of the actions the attempt completed after
// the cancellation (the action was already under way when the
// withdrawal, disconnect or release cancellation answered), so the fan's
// export says what was done, and gives up the attempt's lease. It
// touches only a cancelled pre-save and reports whether it found one;
// the attempt's grant lease it gives back whatever the pre-save's state
// (an attempt whose pre-save moved on ends here too).
func (s *Store) RecordLateResults(ctx context.Context, id uuid.UUID, results map[providers.Action]ActionResult) (bool, error) {
	b, err := marshalResults(results)
	if err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `
		WITH g AS (`+releaseGrantSQL("$1")+`)
		UPDATE presaves SET results = results || $2::jsonb, lease_until = NULL, updated_at = now()
		WHERE id = $1 AND status = 'cancelled'`, id, b)
	if err != nil {
		return false, fmt.Errorf("store: record late results: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// marshalResults encodes per-action results as a JSON object ("{}" when
// there are none), for merging with jsonb ||.
func marshalResults(results map[providers.Action]ActionResult) (string, error) {
	if results == nil {
		results = map[providers.Action]ActionResult{}
	}
	b, err := json.Marshal(results)
	return string(b), err
}

// PostponePresave puts a pre-save that is not due yet back to pending, for
// the relay to claim when it comes within the window again.
func (s *Store) PostponePresave(ctx context.Context, id uuid.UUID, generation int) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE presaves SET status = 'pending', enqueued_at = NULL, lease_until = NULL, updated_at = now()
		WHERE id = $1 AND generation = $2 AND status IN ('enqueued', 'running')`, id, generation)
	if err != nil {
		return false, fmt.Errorf("store: postpone presave: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Finish is a pre-save's final state, as the worker decided it.
type Finish struct {
	ID         uuid.UUID
	Generation int
	// Status is done, partial or failed.
	Status PresaveStatus
	// Results are merged into the stored results (per action).
	Results   map[providers.Action]ActionResult
	LastError string
	// PurgeReason is recorded with a revocation.
	PurgeReason string
	// PurgeAlways deletes the fan's token at this provider whatever else
	// needed it (the grant is invalid: it helps nobody).
	PurgeAlways bool
	// Provider, when set, is the pre-save's provider: a provider whose
	// grants are not revocable then finishes in a single statement.
	Provider providers.Name
	// TokenAuthorizedAt, when set, is the authorization of the token the
	// attempt used. A token re-authorized since (the fan consented again
	// while this pre-save finished) is never purged here: it belongs to
	// the new consent. Refreshes and key rotation keep authorized_at.
	TokenAuthorizedAt time.Time
	// TargetError, when set (TargetError), is the attempt's first target
	// error: the breaker counts it, and while the release's guard is not
	// open the pre-save is held (token kept) instead of finishing.
	TargetError string
}

// Finished is what FinishPresave did.
type Finished struct {
	// Applied is false when the generation moved on (nothing written).
	Applied bool
	// Held: the pre-save was held instead of finishing (Finish.TargetError).
	Held bool
	// FanID and Provider name the token the purge concerned.
	FanID    uuid.UUID
	Provider providers.Name
	// Purge says whether the token was deleted and which revocation, if
	// any, needs a purge task.
	Purge Purge
	// RevokeToken is the grant the revocation holds, in plaintext, so
	// the caller can revoke it at once instead of reading it back. It
	// lives in memory only: never log or store it.
	RevokeToken string
}

// finishStatement is FinishPresaves' status changes and token deletions,
// one statement for the batch: arrays $1 ID, $2 generation, $3 status,
// $4 results, $5 last error, $6 purge always, $7 token version, $8
// target error.
//
// The DELETE sees the snapshot from before the UPDATE beside it, so the
// pre-saves this statement ends are excluded from the open ones by ID
// (two of one fan in a batch both end before the token goes; one held
// stays open). A consent writing the token row at the same moment holds
// its row lock: the DELETE waits for it, then re-checks the row it
// wrote, whose new authorized_at no longer matches the attempt's, so the
// new consent's token survives (the NOT EXISTS alone would still read
// the snapshot from before that consent). r gives back the grant leases
// of the rows it did not delete. Rows are found by "id = ANY ($1)" (see
// beginStatement).
var finishStatement = `
			WITH x AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::jsonb[], $5::text[], $6::bool[],
				$7::timestamptz[], $8::text[]) AS x(x_id, x_generation, x_status, x_results, x_error, x_purge, x_version, x_target)),
			p AS (
				UPDATE presaves SET
					status = CASE WHEN x.x_target IS NOT NULL AND NOT x.x_purge AND ` + holdsSQL("presaves", false) + `
						THEN 'held' ELSE x.x_status END,
					results = results || x.x_results, last_error = NULLIF(x.x_error, ''), target_error = x.x_target,
					ended_at = now(), completed_at = now(), lease_until = NULL, updated_at = now()
				FROM x
				WHERE id = ANY ($1::uuid[]) AND id = x.x_id AND generation = x.x_generation AND status IN ` + runnableStatuses + `
				RETURNING presaves.id, fan_id, provider, status, x.x_purge, x.x_version),
			d AS (
				DELETE FROM provider_tokens t USING p
				WHERE p.status <> 'held' AND t.fan_id = p.fan_id AND t.provider = p.provider
				  AND (p.x_version IS NULL OR t.authorized_at = p.x_version)
				  AND (p.x_purge OR NOT ` + TokenNeededSQL("p.fan_id", "p.provider", "ALL (ARRAY(SELECT e.id FROM p e WHERE e.status <> 'held'))") + `)
				RETURNING t.fan_id, t.provider, t.refresh_sealed),
			r AS (
				` + releaseGrantSQL("ANY ($1::uuid[])") + `
				  AND NOT EXISTS (SELECT 1 FROM d WHERE d.fan_id = t.fan_id AND d.provider = t.provider))
			SELECT p.id, p.fan_id, p.provider, p.status, d.refresh_sealed
			FROM p LEFT JOIN d ON d.fan_id = p.fan_id AND d.provider = p.provider`

// FinishPresave is FinishPresaves for one pre-save.
func (s *Store) FinishPresave(ctx context.Context, f Finish) (Finished, error) {
	out, err := s.FinishPresaves(ctx, []Finish{f})
	if err != nil {
		return Finished{}, err
	}
	return out[0], nil
}

// FinishPresaves records final states and, in the same transaction,
// deletes each fan's token at the provider when no open pre-save needs
// it any more (ARCHITECTURE.md invariant 4). The caller enqueues a purge
// task for a Finished.Purge.RevocationID that is set. Each Finish gets
// its Finished, in order; the error is for the whole batch (nothing
// written).
//
// The status changes and the token deletions are one statement; when no
// pre-save of the batch is at a provider whose grants are revocable
// (Finish.Provider says so) that statement is the whole transaction,
// otherwise the revocation rows are written in the same transaction as
// it, in two round trips (inPipelinedTx): BEGIN with the finish, then
// the revocations, re-sealed in Go in between, with COMMIT.
func (s *Store) FinishPresaves(ctx context.Context, fs []Finish) ([]Finished, error) {
	args, reasons, err := finishArgs(fs)
	if err != nil {
		return nil, err
	}
	revocable := false
	for _, f := range fs {
		revocable = revocable || f.Provider == "" || s.revocableAt(f.Provider)
	}
	out := make([]Finished, len(fs))
	var refresh [][]byte
	if !revocable {
		// Nothing to move: one statement, no transaction.
		rows, err := s.pool.Query(ctx, finishStatement, args...)
		if err == nil {
			refresh, err = scanFinishes(rows, fs, out)
		}
		if err != nil {
			return nil, fmt.Errorf("store: finish presaves: %w", err)
		}
		return out, nil
	}
	first := &pgx.Batch{}
	first.Queue(finishStatement, args...).Query(func(rows pgx.Rows) error {
		var err error
		refresh, err = scanFinishes(rows, fs, out)
		return err
	})
	err = s.inPipelinedTx(ctx, first, func() (*pgx.Batch, error) {
		last := &pgx.Batch{}
		var revs []newRevocation
		for i, sealed := range refresh {
			if sealed == nil || !s.revocableAt(out[i].Provider) {
				continue
			}
			r, ok, err := s.revocationRow(out[i].FanID, out[i].Provider, sealed, reasons[i])
			if err != nil {
				return nil, err
			}
			if ok {
				revs = append(revs, r)
				out[i].Purge.RevocationID, out[i].RevokeToken = r.id, r.token
			}
		}
		if len(revs) > 0 {
			q := insertRevocations(revs)
			last.Queue(q.SQL, q.Arguments...)
		}
		return last, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: finish presaves: %w", err)
	}
	return out, nil
}

// finishArgs are finishStatement's arrays for fs, and each finish's
// revocation reason.
func finishArgs(fs []Finish) ([]any, []string, error) {
	n := len(fs)
	var (
		ids      = make([]uuid.UUID, n)
		gens     = make([]int, n)
		statuses = make([]string, n)
		results  = make([]string, n)
		errs     = make([]string, n)
		purge    = make([]bool, n)
		versions = make([]*time.Time, n)
		targets  = make([]*string, n)
		reasons  = make([]string, n)
	)
	for i, f := range fs {
		if f.Status != PresaveDone && f.Status != PresavePartial && f.Status != PresaveFailed {
			return nil, nil, fmt.Errorf("store: finish presave: %q is not a final status", f.Status)
		}
		b, err := marshalResults(f.Results)
		if err != nil {
			return nil, nil, err
		}
		ids[i], gens[i], statuses[i], results[i], errs[i], purge[i] = f.ID, f.Generation, string(f.Status), b, f.LastError, f.PurgeAlways
		if !f.TokenAuthorizedAt.IsZero() {
			versions[i] = &f.TokenAuthorizedAt
		}
		targets[i] = nullable(f.TargetError)
		reasons[i] = f.PurgeReason
		if reasons[i] == "" {
			reasons[i] = "presave_" + string(f.Status)
		}
	}
	return []any{ids, gens, statuses, results, errs, purge, versions, targets}, reasons, nil
}

// scanFinishes fills out (in fs's order) from finishStatement's rows and
// returns the sealed refresh token each finish deleted. A token two
// finishes of one batch shared goes with the first of them only, so it
// is revoked once.
func scanFinishes(rows pgx.Rows, fs []Finish, out []Finished) ([][]byte, error) {
	defer rows.Close()
	type row struct {
		f       Finished
		refresh []byte
	}
	byID := map[uuid.UUID]row{}
	for rows.Next() {
		var (
			id     uuid.UUID
			r      row
			status PresaveStatus
		)
		if err := rows.Scan(&id, &r.f.FanID, &r.f.Provider, &status, &r.refresh); err != nil {
			return nil, err
		}
		r.f.Applied, r.f.Held = true, status == PresaveHeld
		byID[id] = r
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	refresh := make([][]byte, len(fs))
	type grant struct {
		fan uuid.UUID
		p   providers.Name
	}
	taken := map[grant]bool{}
	for i, f := range fs {
		r, ok := byID[f.ID]
		if !ok {
			continue
		}
		delete(byID, f.ID) // a Finish repeated in the batch found it ended
		g := grant{r.f.FanID, r.f.Provider}
		if r.refresh != nil && !taken[g] {
			taken[g] = true
			r.f.Purge.Deleted, refresh[i] = true, r.refresh
		} else if r.refresh != nil {
			r.f.Purge.Deleted = true
		}
		out[i] = r.f
	}
	return refresh, nil
}

// RefreshPresaveStatistics analyses presaves when its statistics count
// fewer than half of inFlight pre-saves in flight (the partial index of
// enqueued and running ones), and reports whether it did. The relay calls
// it when a wave of claims starts: the statistics from before it (taken
// while the release's pre-saves were pending) count the pre-saves now in
// flight as none, and with them the planner preferred a scan of that
// index (empty, it believed) to finding a batch's rows by their IDs:
// 100-300 ms a start beside a million finished pre-saves.
func (s *Store) RefreshPresaveStatistics(ctx context.Context, inFlight int) (bool, error) {
	var believed float64
	err := s.pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'presaves_inflight_due'::regclass`).Scan(&believed)
	if err != nil {
		return false, fmt.Errorf("store: presaves statistics: %w", err)
	}
	if believed >= float64(inFlight)/2 {
		return false, nil
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE presaves`); err != nil {
		return false, fmt.Errorf("store: analyze presaves: %w", err)
	}
	return true, nil
}

// DuePresave is a pre-save the relay or sweeper hands to the queue.
type DuePresave struct {
	ID         uuid.UUID
	Generation int
	Provider   providers.Name
	DueAt      time.Time
	// FanID lets the task take the fan's grant lock before it reads
	// anything (an opaque ID, allowed in a payload).
	FanID uuid.UUID
}

func collectDue(rows pgx.Rows) ([]DuePresave, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (DuePresave, error) {
		var d DuePresave
		err := row.Scan(&d.ID, &d.Generation, &d.Provider, &d.DueAt, &d.FanID)
		return d, err
	})
}

// nullUUID is id, or SQL NULL for uuid.Nil.
func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// relayLock names the advisory lock that keeps the relay single across the
// cluster. It is derived from the schema so that separate schemas (tests,
// staging next to production) never block each other.
const relayLock = `hashtext(current_schema() || ':presave-relay')`

// ClaimDuePresaves is the relay's claim: under a transaction-scoped
// advisory lock (one relay at a time, cluster-wide), it chooses the
// canary (canarySize pre-saves besides the canary fans) of every release
// coming due, then moves up to batch pending pre-saves due within window
// that no guard holds back to enqueued and returns them, oldest due
// first. Having chosen a canary, it analyses presaves. ran is false when another relay holds the lock. The caller
// enqueues each; a process dying before it does leaves enqueued rows
// without a task, which InFlightPresaves finds.
func (s *Store) ClaimDuePresaves(ctx context.Context, window time.Duration, batch, canarySize int) (claimed []DuePresave, ran bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(`+relayLock+`)`).Scan(&ran); err != nil || !ran {
			return err
		}
		chosen, err := chooseCanaries(ctx, tx, window, canarySize)
		if err != nil {
			return err
		}
		if chosen > 0 {
			// A release went live: its pre-saves are about to be started
			// and finished by the thousand, by statements that find one
			// row by its ID. Statistics from before (a history of
			// finished pre-saves, its open ones not yet counted) have the
			// planner scan a partial index of open work for that row
			// instead of using the primary key. ANALYZE samples the table
			// (a fraction of a second at a million rows); its statistics
			// are everyone's once the claim commits.
			if _, err := tx.Exec(ctx, `ANALYZE presaves`); err != nil {
				return err
			}
		}
		// SKIP LOCKED: rows a consent or reschedule is changing right now
		// are left for the next tick instead of blocking the relay. The
		// pre-saves a guard holds back stay pending.
		rows, err := tx.Query(ctx, `
			WITH due AS (
				SELECT id FROM presaves p
				WHERE status = 'pending' AND due_at <= now() + make_interval(secs => $1)
				  AND NOT `+blockedByGuardSQL("p")+`
				ORDER BY due_at LIMIT $2
				FOR UPDATE OF p SKIP LOCKED)
			UPDATE presaves p SET status = 'enqueued', enqueued_at = now(), updated_at = now()
			FROM due WHERE p.id = due.id
			RETURNING p.id, p.generation, p.provider, p.due_at, p.fan_id`, window.Seconds(), batch)
		if err != nil {
			return err
		}
		claimed, err = collectDue(rows)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: claim due presaves: %w", err)
	}
	return claimed, ran, nil
}

// InFlightCursor pages through in-flight pre-saves by (due_at, id).
type InFlightCursor struct {
	DueAt time.Time
	ID    uuid.UUID
}

// InFlightPresaves lists enqueued or running pre-saves due within window
// and queued at least queuedFor ago, after the cursor (zero value: from
// the start), so the relay can put back the tasks Redis lost. queuedFor
// spares a rescue the pre-saves queued since the previous one (a
// release's whole drain, on its day): a task lost among them is found by
// the next rescue.
func (s *Store) InFlightPresaves(ctx context.Context, window, queuedFor time.Duration, after InFlightCursor, limit int) ([]DuePresave, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, generation, provider, due_at, fan_id FROM presaves
		WHERE status IN ('enqueued', 'running') AND due_at <= now() + make_interval(secs => $1)
			AND (enqueued_at IS NULL OR enqueued_at <= now() - make_interval(secs => $5))
			AND (due_at, id) > ($2, $3)
		ORDER BY due_at, id LIMIT $4`, window.Seconds(), after.DueAt, after.ID, limit, queuedFor.Seconds())
	if err != nil {
		return nil, fmt.Errorf("store: in-flight presaves: %w", err)
	}
	out, err := collectDue(rows)
	if err != nil {
		return nil, fmt.Errorf("store: in-flight presaves: %w", err)
	}
	return out, nil
}

// ReviveStuckPresaves makes runnable again up to limit pre-saves that have
// been running for longer than timeout (their worker died): each gets a
// new generation, so the dead worker's task, when asynq recovers it, is
// stale and does nothing, and status enqueued. The caller enqueues each.
// timeout must exceed the longest a handler may run, or a slow but live
// handler would race the revived task.
func (s *Store) ReviveStuckPresaves(ctx context.Context, timeout time.Duration, limit int) ([]DuePresave, error) {
	rows, err := s.pool.Query(ctx, `
		WITH stuck AS (
			SELECT id FROM presaves
			WHERE status = 'running' AND started_at < now() - make_interval(secs => $1)
			ORDER BY started_at LIMIT $2
			FOR UPDATE SKIP LOCKED)
		UPDATE presaves p SET generation = p.generation + 1, status = 'enqueued', enqueued_at = now(),
			last_error = 'revived: running past its lease', updated_at = now()
		FROM stuck WHERE p.id = stuck.id
		RETURNING p.id, p.generation, p.provider, p.due_at, p.fan_id`, timeout.Seconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: revive stuck presaves: %w", err)
	}
	out, err := collectDue(rows)
	if err != nil {
		return nil, fmt.Errorf("store: revive stuck presaves: %w", err)
	}
	return out, nil
}

// MarkDueEnqueued is for the scheduler: it moves a pending
// pre-save of the given generation to enqueued and returns it as the task
// will name it (with its fan). ok is false when the pre-save is no longer
// pending at that generation.
func (s *Store) MarkDueEnqueued(ctx context.Context, id uuid.UUID, generation int) (d DuePresave, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `
		UPDATE presaves SET status = 'enqueued', enqueued_at = now(), updated_at = now()
		WHERE id = $1 AND generation = $2 AND status = 'pending'
		RETURNING id, generation, provider, due_at, fan_id`, id, generation).
		Scan(&d.ID, &d.Generation, &d.Provider, &d.DueAt, &d.FanID)
	if errors.Is(err, pgx.ErrNoRows) {
		return DuePresave{}, false, nil
	}
	if err != nil {
		return DuePresave{}, false, fmt.Errorf("store: mark enqueued: %w", err)
	}
	return d, true, nil
}
