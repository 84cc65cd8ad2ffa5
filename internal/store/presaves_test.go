package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
	"github.com/presave/presave/internal/store/storetest"
)

func jobsFixture(t *testing.T, st *store.Store, p providers.Name, due time.Time) store.Presave {
	t.Helper()
	ctx := context.Background()
	rel, err := st.CreateRelease(ctx, store.Release{Slug: "r-" + uuid.NewString()[:8], Title: "T", Artist: "A",
		Timing: store.TimingFixed, ReleaseAt: due, SpotifyAlbumIDs: []string{"a"}, YouTubeVideoID: "v"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c, err := st.RecordConsent(ctx, store.Consent{Provider: p, AccountID: "acct-" + uuid.NewString(),
		Token:     store.Token{RefreshToken: "refresh", AccessToken: "access", Expiry: now.Add(time.Hour), AuthorizedAt: now},
		ReleaseID: rel.ID, Actions: []providers.Action{providers.ActionSave}, ConsentedAt: now, ConsentVersion: "v1",
		FanZone: "UTC", DueAt: due}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Presave
}

// The worker's writes are conditioned on the generation: a stale task
// changes nothing, and finishing the last open pre-save purges the token
// in the same transaction (queuing a revocation for revocable providers).
func TestJobsLifecycleAndPurge(t *testing.T) {
	t.Parallel()
	st0 := storetest.New(t).Store
	ctx := context.Background()
	revocable := func(p providers.Name) bool { return p == providers.YouTube }
	st := st0.WithRevocable(revocable)
	ps := jobsFixture(t, st, providers.YouTube, time.Now().Add(time.Minute))

	// Pending: a task cannot start it (it was never claimed).
	if _, ok, err := begin(ctx, st, ps, ps.Generation, time.Minute); err != nil || ok {
		t.Fatalf("BeginAttempt on pending = %v, %v; want false", ok, err)
	}
	claimed, ran, err := st.ClaimDuePresaves(ctx, 10*time.Minute, 100, claimAll)
	if err != nil || !ran || len(claimed) != 1 || claimed[0].ID != ps.ID {
		t.Fatalf("ClaimDuePresaves = %v, %v, %v", claimed, ran, err)
	}
	if again, _, _ := st.ClaimDuePresaves(ctx, 10*time.Minute, 100, claimAll); len(again) != 0 {
		t.Fatalf("claimed twice: %v", again)
	}
	if _, ok, _ := begin(ctx, st, ps, ps.Generation+1, time.Minute); ok {
		t.Fatal("a wrong generation started")
	}
	run, ok, err := begin(ctx, st, ps, ps.Generation, time.Minute)
	if err != nil || !ok || run.Status != store.PresaveRunning || run.Attempts != 1 {
		t.Fatalf("BeginAttempt = %+v, %v, %v", run, ok, err)
	}
	stale, err := st.FinishPresave(ctx, store.Finish{ID: ps.ID, Generation: ps.Generation + 1, Status: store.PresaveDone})
	if err != nil || stale.Applied {
		t.Fatalf("stale FinishPresave = %+v, %v", stale, err)
	}
	res := map[providers.Action]store.ActionResult{providers.ActionSave: {Outcome: "ok", At: time.Now()}}
	fin, err := st.FinishPresave(ctx, store.Finish{ID: ps.ID, Generation: ps.Generation, Status: store.PresaveDone, Results: res})
	if err != nil || !fin.Applied || !fin.Purge.Deleted || fin.Purge.RevocationID == uuid.Nil || fin.RevokeToken != "refresh" {
		t.Fatalf("FinishPresave = %+v, %v; want applied with token purged and a revocation", fin, err)
	}
	if has, _ := inspect.HasToken(ctx, st, ps.FanID, providers.YouTube); has {
		t.Fatal("token survived the last pre-save")
	}
	got, _ := st.Presave(ctx, ps.ID)
	if got.Status != store.PresaveDone || got.Results[providers.ActionSave].Outcome != "ok" || got.CompletedAt == nil {
		t.Fatalf("after finish: %+v", got)
	}
	ids, err := st.RevocationIDsAfter(ctx, uuid.Nil, 10)
	if err != nil || len(ids) != 1 || ids[0] != fin.Purge.RevocationID {
		t.Fatalf("RevocationIDsAfter = %v, %v", ids, err)
	}
}

// A pre-save stuck running past the timeout gets a new generation (the
// dead worker's task becomes stale) and is enqueued again.
func TestReviveStuckAndInFlight(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store
	ctx := context.Background()
	ps := jobsFixture(t, st, providers.Spotify, time.Now().Add(-time.Second))
	if _, _, err := st.ClaimDuePresaves(ctx, time.Minute, 10, claimAll); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := begin(ctx, st, ps, ps.Generation, time.Minute); !ok || err != nil {
		t.Fatalf("start: %v %v", ok, err)
	}
	if got, err := st.ReviveStuckPresaves(ctx, time.Hour, 10); err != nil || len(got) != 0 {
		t.Fatalf("revived a fresh run: %v %v", got, err)
	}
	time.Sleep(1100 * time.Millisecond)
	got, err := st.ReviveStuckPresaves(ctx, time.Second, 10)
	if err != nil || len(got) != 1 || got[0].Generation != ps.Generation+1 {
		t.Fatalf("ReviveStuckPresaves = %v, %v", got, err)
	}
	if _, ok, _ := begin(ctx, st, ps, ps.Generation, time.Minute); ok {
		t.Fatal("the dead worker's generation could start again")
	}
	inflight, err := st.InFlightPresaves(ctx, time.Minute, 0, store.InFlightCursor{}, 10)
	if err != nil || len(inflight) != 1 || inflight[0].Generation != ps.Generation+1 {
		t.Fatalf("InFlightPresaves = %v, %v", inflight, err)
	}
	// Queued just now: a rescue that spares the last interval's skips it.
	if recent, err := st.InFlightPresaves(ctx, time.Minute, time.Hour, store.InFlightCursor{}, 10); err != nil || len(recent) != 0 {
		t.Fatalf("InFlightPresaves queued an hour ago = %v, %v; want none", recent, err)
	}
	// Unneeded tokens: none while the pre-save is open.
	if purged, _, err := st.PurgeUnneededTokens(ctx, 0, store.TokenCursor{}, 10); err != nil || len(purged) != 0 {
		t.Fatalf("purged a needed token: %v %v", purged, err)
	}
	if _, err := st.FinishPresave(ctx, store.Finish{ID: ps.ID, Generation: ps.Generation + 1, Status: store.PresaveFailed, LastError: "x"}); err != nil {
		t.Fatal(err)
	}
	if has, _ := inspect.HasToken(ctx, st, ps.FanID, providers.Spotify); has {
		t.Fatal("token survived")
	}
}

// Two tasks of one generation (possible after Redis lost its data) never
// run a pre-save at once: the second finds the first's lease, learns when
// it lapses, and may start after that or after the first hands it back.
func TestAttemptLease(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store
	ctx := context.Background()
	ps := jobsFixture(t, st, providers.Spotify, time.Now().Add(-time.Second))
	if _, _, err := st.ClaimDuePresaves(ctx, time.Minute, 10, claimAll); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := begin(ctx, st, ps, ps.Generation, time.Minute); !ok || err != nil {
		t.Fatalf("first start: %v %v", ok, err)
	}
	_, ok, err := begin(ctx, st, ps, ps.Generation, time.Minute)
	var leased *store.LeasedError
	if ok || !errors.As(err, &leased) || time.Until(leased.Until) < 50*time.Second {
		t.Fatalf("second start = %v, %v; want a LeasedError about a minute away", ok, err)
	}
	// Handing it back (a deferral) releases the lease at once.
	if rq, err := st.RequeuePresave(ctx, store.Requeue{ID: ps.ID, Generation: ps.Generation, LastError: "deferred"}); !rq.Applied || err != nil {
		t.Fatalf("requeue: %+v %v", rq, err)
	}
	if _, ok, err := begin(ctx, st, ps, ps.Generation, 100*time.Millisecond); !ok || err != nil {
		t.Fatalf("start after requeue: %v %v", ok, err)
	}
	// A crashed attempt's lease lapses by itself.
	time.Sleep(200 * time.Millisecond)
	if _, ok, err := begin(ctx, st, ps, ps.Generation, time.Minute); !ok || err != nil {
		t.Fatalf("start after the lease lapsed: %v %v", ok, err)
	}
}

// BeginAttempt starts only the named fan's pre-save when it is due, reads
// the token and the release's version with the start, and tells a task
// that is early, leased or stale apart; requeue keeps the results so far.
func TestBeginAttempt(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store
	ctx := context.Background()
	ps := jobsFixture(t, st, providers.Spotify, time.Now().Add(time.Minute))
	if _, _, err := st.ClaimDuePresaves(ctx, 10*time.Minute, 10, claimAll); err != nil {
		t.Fatal(err)
	}
	_, ok, err := st.BeginAttempt(ctx, ps.ID, ps.Generation, ps.FanID, time.Minute, 5*time.Second)
	var notDue *store.NotDueError
	if ok || !errors.As(err, &notDue) || !notDue.DueAt.Equal(ps.DueAt) {
		t.Fatalf("early BeginAttempt = %v, %v; want a NotDueError", ok, err)
	}
	if got, _ := st.Presave(ctx, ps.ID); got.Status != store.PresaveEnqueued || got.Attempts != 0 {
		t.Fatalf("an early task changed the row: %+v", got)
	}
	if _, ok, err := st.BeginAttempt(ctx, ps.ID, ps.Generation, uuid.New(), time.Minute, time.Hour); ok || err != nil {
		t.Fatalf("another fan's lock started it: %v %v", ok, err)
	}
	if _, ok, err := st.BeginAttempt(ctx, ps.ID, ps.Generation+1, ps.FanID, time.Minute, time.Hour); ok || err != nil {
		t.Fatalf("a stale generation started: %v %v", ok, err)
	}
	att, ok, err := st.BeginAttempt(ctx, ps.ID, ps.Generation, ps.FanID, time.Minute, time.Hour)
	rel, _ := st.Release(ctx, ps.ReleaseID)
	if err != nil || !ok || att.Presave.Status != store.PresaveRunning || att.Presave.Attempts != 1 ||
		att.TokenErr != nil || att.Token.RefreshToken != "refresh" || att.Token.AccessToken != "access" ||
		!att.ReleaseUpdatedAt.Equal(rel.UpdatedAt) {
		t.Fatalf("BeginAttempt = %+v, %v, %v", att, ok, err)
	}
	var leased *store.LeasedError
	if _, ok, err := st.BeginAttempt(ctx, ps.ID, ps.Generation, ps.FanID, time.Minute, time.Hour); ok || !errors.As(err, &leased) {
		t.Fatalf("second BeginAttempt = %v, %v; want a LeasedError", ok, err)
	}
	res := map[providers.Action]store.ActionResult{providers.ActionSave: {Outcome: "ok", At: time.Now()}}
	if rq, err := st.RequeuePresave(ctx, store.Requeue{ID: ps.ID, Generation: ps.Generation, LastError: "deferred", Results: res}); !rq.Applied || err != nil {
		t.Fatalf("requeue: %+v %v", rq, err)
	}
	if got, _ := st.Presave(ctx, ps.ID); got.Results[providers.ActionSave].Outcome != "ok" || got.Status != store.PresaveEnqueued {
		t.Fatalf("requeue lost the results: %+v", got)
	}
	// Purged meanwhile (as an invalid grant seen by another pre-save does).
	if _, err := st.Pool().Exec(ctx, `DELETE FROM provider_tokens WHERE fan_id = $1`, ps.FanID); err != nil {
		t.Fatal(err)
	}
	att, ok, err = st.BeginAttempt(ctx, ps.ID, ps.Generation, ps.FanID, time.Minute, time.Hour)
	if err != nil || !ok || !errors.Is(att.TokenErr, store.ErrNotFound) || att.Presave.Attempts != 2 {
		t.Fatalf("BeginAttempt without a token = %+v, %v, %v", att, ok, err)
	}
}

// TestBeginAttemptOpensOnlyTheConsentedAccountsGrant: a grant of another
// account in the pre-save's (fan, provider) row is not handed to the
// attempt (it would act on an account the fan did not consent with); a
// grant that does not authenticate comes back as ErrTokenUnreadable with
// its row's identity and no secret.
func TestBeginAttemptOpensOnlyTheConsentedAccountsGrant(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store
	ctx := context.Background()
	ps := jobsFixture(t, st, providers.Spotify, time.Now().Add(time.Minute))
	if _, _, err := st.ClaimDuePresaves(ctx, 10*time.Minute, 10, claimAll); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE provider_tokens SET account_id = 'someone-else' WHERE fan_id = $1`, ps.FanID); err != nil {
		t.Fatal(err)
	}
	att, ok, err := st.BeginAttempt(ctx, ps.ID, ps.Generation, ps.FanID, time.Minute, time.Hour)
	if err != nil || !ok || !errors.Is(att.TokenErr, store.ErrNotFound) || att.Token.RefreshToken != "" {
		t.Fatalf("BeginAttempt with another account's grant = %+v, %v, %v", att, ok, err)
	}
	if _, err := st.RequeuePresave(ctx, store.Requeue{ID: ps.ID, Generation: ps.Generation}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE provider_tokens SET account_id = $2,
		refresh_sealed = set_byte(refresh_sealed, 20, get_byte(refresh_sealed, 20) # 1) WHERE fan_id = $1`, ps.FanID, ps.AccountID); err != nil {
		t.Fatal(err)
	}
	att, ok, err = st.BeginAttempt(ctx, ps.ID, ps.Generation, ps.FanID, time.Minute, time.Hour)
	if err != nil || !ok || !errors.Is(att.TokenErr, store.ErrTokenUnreadable) || att.Token.RefreshToken != "" ||
		att.Token.KeyID == "" || att.Token.AuthorizedAt.IsZero() {
		t.Fatalf("BeginAttempt with a tampered grant = %+v, %v, %v", att, ok, err)
	}
}

// Finishing in one statement (a provider without revocation) keeps the
// token while another open pre-save of the fan needs it, and purges it
// with the last one.
func TestFinishKeepsNeededToken(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store
	ctx := context.Background()
	first := jobsFixture(t, st, providers.Spotify, time.Now().Add(-time.Second))
	rel, err := st.CreateRelease(ctx, store.Release{Slug: "r-" + uuid.NewString()[:8], Title: "T", Artist: "A",
		Timing: store.TimingFixed, ReleaseAt: time.Now().Add(time.Hour), SpotifyAlbumIDs: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	second, err := st.RecordConsent(ctx, store.Consent{FanID: first.FanID, Provider: providers.Spotify, AccountID: first.AccountID,
		Token:     store.Token{RefreshToken: "refresh2", AuthorizedAt: now},
		ReleaseID: rel.ID, Actions: []providers.Action{providers.ActionSave}, ConsentedAt: now, ConsentVersion: "v1",
		FanZone: "UTC", DueAt: rel.ReleaseAt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	finish := func(ps store.Presave) store.Finished {
		t.Helper()
		f, err := st.FinishPresave(ctx, store.Finish{ID: ps.ID, Generation: ps.Generation, Provider: providers.Spotify,
			Status: store.PresaveDone})
		if err != nil || !f.Applied || f.FanID != first.FanID || f.Purge.RevocationID != uuid.Nil {
			t.Fatalf("FinishPresave = %+v, %v", f, err)
		}
		return f
	}
	if f := finish(first); f.Purge.Deleted {
		t.Fatal("purged a token another open pre-save needs")
	}
	if has, _ := inspect.HasToken(ctx, st, first.FanID, providers.Spotify); !has {
		t.Fatal("token gone")
	}
	if f := finish(second.Presave); !f.Purge.Deleted {
		t.Fatal("the last pre-save left the token")
	}
	if has, _ := inspect.HasToken(ctx, st, first.FanID, providers.Spotify); has {
		t.Fatal("token survived the last pre-save")
	}
}

// A fan consents again while their last pre-save finishes: the consent's
// transaction has written the token (holding its row) and the new
// pre-save when the finish's purge runs. The purge waits for the row and
// must then leave the re-authorized token alone, though the new pre-save
// was invisible to it when it started.
func TestFinishSparesTokenOfAConcurrentConsent(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	st := b.Store
	ctx := context.Background()
	ps := jobsFixture(t, st, providers.Spotify, time.Now().Add(-time.Second))
	if _, _, err := st.ClaimDuePresaves(ctx, time.Minute, 10, claimAll); err != nil {
		t.Fatal(err)
	}
	old, err := st.Token(ctx, ps.FanID, providers.Spotify)
	if err != nil {
		t.Fatal(err)
	}
	next, err := st.CreateRelease(ctx, store.Release{Slug: "next-" + uuid.NewString()[:8], Title: "T", Artist: "A",
		Timing: store.TimingFixed, ReleaseAt: time.Now().Add(time.Hour), SpotifyAlbumIDs: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}

	// The concurrent consent, played by hand so it can stay open: it
	// re-authorizes the token row and adds an open pre-save.
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE provider_tokens SET authorized_at = now() + interval '1 second' WHERE fan_id = $1 AND provider = 'spotify'`, ps.FanID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO presaves (id, fan_id, release_id, provider, actions, consented_at, consent_version, fan_zone, due_at)
		SELECT $1, fan_id, $3, provider, actions, now(), 'v2', fan_zone, due_at + interval '1 day'
		FROM presaves WHERE id = $2`, uuid.Must(uuid.NewV7()), ps.ID, next.ID); err != nil {
		t.Fatal(err)
	}

	var consentPID int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&consentPID); err != nil {
		t.Fatal(err)
	}

	done := make(chan store.Finished, 1)
	errc := make(chan error, 1)
	go func() {
		f, err := st.FinishPresave(ctx, store.Finish{ID: ps.ID, Generation: ps.Generation, Provider: providers.Spotify,
			Status: store.PresaveDone, TokenAuthorizedAt: old.AuthorizedAt})
		errc <- err
		done <- f
	}()
	// The race happens only if the finish waits on the consent's row
	// lock: wait until PostgreSQL says it does (a finish that never
	// blocks fails here).
	waitBlockedBy(t, st, consentPID)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if f := <-done; !f.Applied || f.Purge.Deleted {
		t.Fatalf("FinishPresave = %+v: the new consent's token was purged", f)
	}
	if has, _ := inspect.HasToken(ctx, st, ps.FanID, providers.Spotify); !has {
		t.Fatal("token of the concurrent consent is gone")
	}
}

// waitBlockedBy waits until some backend waits on a lock that backend
// pid holds, or fails the test after 10 s.
func waitBlockedBy(t *testing.T, st *store.Store, pid int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var n int
		err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&n)
		if err != nil {
			t.Fatalf("nothing waited on backend %d's locks: %v", pid, err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// begin starts an attempt as the worker does (BeginAttempt, holding the
// fan's lock), whatever the pre-save's due time, and returns the row.
func begin(ctx context.Context, st *store.Store, ps store.Presave, generation int, lease time.Duration) (store.Presave, bool, error) {
	att, ok, err := st.BeginAttempt(ctx, ps.ID, generation, ps.FanID, lease, time.Hour)
	return att.Presave, ok, err
}

// claimAll is a canary size that takes in every pre-save these tests
// create, for the tests that are not about the campaign guard.
const claimAll = 1000
