package jobs_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/presave/presave/internal/jobs"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/youtube"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
)

// TestReleaseDayDrain: 100 fans × both providers due in a few seconds.
// Every action is done exactly once at the fake, every token row is gone,
// and Google saw a revoke for every YouTube grant. It also reports the
// lateness from due_at to the start of each pre-save.
//
// Its bookkeeping is batched: with a batch of 10 rows allowed a second to
// fill and 20 tasks at a time, the starts and finishes are written in
// batches of several rows, each pre-save still with its own outcome.
func TestReleaseDayDrain(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"BATCH_MAX_ROWS": "10", "BATCH_MAX_WAIT": "1s"})
	rel := b.newRelease("drain", time.Now().Add(6*time.Second))
	fans := b.consentMany(rel, "drain", 100, providers.Spotify, providers.YouTube, providers.AppleMusic)
	b.startWorker()

	st := b.waitFinal(fans, 2*time.Minute)
	if st[store.PresaveDone] != len(fans) {
		t.Fatalf("statuses %v, want all %d done", st, len(fans))
	}
	b.assertExactlyOnce(fans)
	b.assertTokensGone(fans)
	b.waitRevocationsDone(time.Minute)
	revoked := map[string]int{}
	for _, r := range b.fake.Revoked() {
		if r.Provider == providers.YouTube {
			revoked[r.User]++
		}
	}
	for _, f := range fans {
		if f.provider == providers.YouTube && revoked[f.user] != 1 {
			t.Errorf("youtube %s: revoked %d times, want 1", f.user, revoked[f.user])
		}
	}
	for _, statement := range []string{"start", "finish"} {
		batches, rows := b.histogram("presave_batch_rows", "statement", statement)
		if rows < float64(len(fans)) || batches == 0 || batches > float64(len(fans))/2 {
			t.Errorf("%s: %.0f rows in %.0f batches; want every pre-save's row in batches of 2 or more on average", statement, rows, batches)
		}
	}
	reportLateness(t, b, fans)
}

// reportLateness logs percentiles of started_at - due_at (not asserted:
// speed belongs to benchmarks).
func reportLateness(t *testing.T, b *bundle, fans []fan) {
	var lags []time.Duration
	for _, f := range fans {
		ps, err := b.st.Presave(context.Background(), f.presave.ID)
		if err != nil || ps.StartedAt == nil {
			continue
		}
		lags = append(lags, ps.StartedAt.Sub(ps.DueAt))
	}
	if len(lags) == 0 {
		return
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	pct := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	t.Logf("lateness due_at→start over %d pre-saves: p50=%s p90=%s p99=%s max=%s",
		len(lags), pct(0.5), pct(0.9), pct(0.99), lags[len(lags)-1])
}

// TestFaultsAndRateLimit: 20% of API calls answer 503 and the fake
// enforces a rate limit. Everything completes without duplicates, and the
// fake never sees more than its limit plus a small tolerance in any
// second, because every worker paces through the shared limiter.
func TestFaultsAndRateLimit(t *testing.T) {
	t.Parallel()
	const rps, fakeBurst = 50, 4
	b := setup(t, map[string]string{
		"SPOTIFY_RPS": fmt.Sprint(rps), "SPOTIFY_BURST": "2",
		"YOUTUBE_RPS": fmt.Sprint(rps), "YOUTUBE_BURST": "2",
		"APPLEMUSIC_RPS": fmt.Sprint(rps), "APPLEMUSIC_BURST": "2",
	})
	rel := b.newRelease("faults", time.Now().Add(4*time.Second))
	fans := b.consentMany(rel, "faults", 24, providers.Spotify, providers.YouTube, providers.AppleMusic)
	for _, p := range providers.Names {
		b.fake.SetErrorRate(p, 0.2)
		b.fake.SetRateLimit(p, rps, fakeBurst)
	}
	b.meter.start()
	// Two workers share the limiter through Redis.
	b.startWorker()
	b.startWorker()

	st := b.waitFinal(fans, 3*time.Minute)
	if st[store.PresaveDone] != len(fans) {
		t.Fatalf("statuses %v, want all %d done", st, len(fans))
	}
	b.assertExactlyOnce(fans)
	b.assertTokensGone(fans)
	for _, p := range providers.Names {
		busiest, total := b.meter.maxInWindow(p, time.Second)
		t.Logf("%s: %d API requests, busiest second %d (limit %d/s, burst %d), 503s seen: %d",
			p, total, busiest, rps, fakeBurst, count503(b, p))
		if limit := rps + fakeBurst + 2; busiest > limit {
			t.Errorf("%s: fake saw %d requests in one second, want at most %d", p, busiest, limit)
		}
	}
}

func count503(b *bundle, p providers.Name) int {
	n := 0
	for k, v := range b.fake.State().Calls {
		method, rest, _ := strings.Cut(k, " ")
		path, _, _ := strings.Cut(rest, " ")
		if r, err := http.NewRequest(method, path, nil); err == nil && b.fake.ProviderOf(r) == p && strings.HasSuffix(k, " 503") {
			n += v
		}
	}
	return n
}

// TestRevokedGrantAndNotLive: a fan who revoked the app fails with
// reconnect_required and loses the token; a release not live at its due
// time (Spotify: 400 "non-existing ID", YouTube: 404) is retried until it
// is; a Google account without a YouTube channel fails at once with its
// own reason, not reconnect_required.
func TestRevokedGrantAndNotLive(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	rel := b.newRelease("revoked", time.Now().Add(3*time.Second))
	fans := b.consentMany(rel, "rv", 3, providers.Spotify, providers.YouTube)
	// rv-0 revokes at both providers; rv-1 stays; rv-2 has no channel.
	b.fake.RevokeUser(providers.Spotify, "rv-0")
	b.fake.RevokeUser(providers.YouTube, "rv-0")
	b.fake.SetNoChannel("rv-2")
	// Nothing of the release is out until a few seconds after due.
	live := time.Now().Add(6 * time.Second)
	for _, id := range []string{spAlbum, spTrack1, spTrack2, ytVideo} {
		b.fake.SetNotLiveUntil(id, live)
	}
	b.startWorker()
	b.waitFinal(fans, time.Minute)
	for _, f := range fans {
		ps, err := b.st.Presave(ctx, f.presave.ID)
		if err != nil {
			t.Fatal(err)
		}
		has, err := inspect.HasToken(ctx, b.st, ps.FanID, f.provider)
		if err != nil {
			t.Fatal(err)
		}
		if has {
			t.Errorf("%s %s: token still stored", f.provider, f.user)
		}
		switch f.user {
		case "rv-0":
			if ps.Status != store.PresaveFailed || ps.LastError != jobs.ReasonReconnect {
				t.Errorf("%s %s: status %s (%q), want failed (%s)", f.provider, f.user, ps.Status, ps.LastError, jobs.ReasonReconnect)
			}
			for a, r := range ps.Results {
				if r.Outcome != "failed" || r.Reason != jobs.ReasonReconnect {
					t.Errorf("%s %s: action %s result %+v, want failed/%s", f.provider, f.user, a, r, jobs.ReasonReconnect)
				}
			}
		case "rv-2":
			if f.provider == providers.Spotify {
				if ps.Status != store.PresaveDone {
					t.Errorf("%s %s: status %s (%q), want done", f.provider, f.user, ps.Status, ps.LastError)
				}
				break
			}
			if ps.Status != store.PresaveFailed || !strings.HasSuffix(ps.LastError, youtube.ReasonNoChannel) || ps.Attempts != 1 {
				t.Errorf("%s %s: status %s (%q) after %d attempts, want failed (%s) at once", f.provider, f.user, ps.Status, ps.LastError, ps.Attempts, youtube.ReasonNoChannel)
			}
			for a, r := range ps.Results {
				if r.Outcome != "failed" || r.Reason != youtube.ReasonNoChannel {
					t.Errorf("%s %s: action %s result %+v, want failed/%s", f.provider, f.user, a, r, youtube.ReasonNoChannel)
				}
			}
		case "rv-1":
			if ps.Status != store.PresaveDone {
				t.Errorf("%s %s: status %s (%q), want done", f.provider, f.user, ps.Status, ps.LastError)
			}
			if ps.Attempts < 2 {
				t.Errorf("%s %s: %d attempts, want retries while not live", f.provider, f.user, ps.Attempts)
			}
			if ps.CompletedAt != nil && ps.CompletedAt.Before(live) {
				t.Errorf("%s %s: completed %s before the release went live %s", f.provider, f.user, ps.CompletedAt, live)
			}
		}
	}
	for _, f := range fans {
		if f.user == "rv-1" || (f.user == "rv-2" && f.provider == providers.Spotify) {
			b.assertExactlyOnce([]fan{f})
		}
	}
	b.waitRevocationsDone(time.Minute)
}

// TestReleaseMovedLater: a release moved after its pre-saves were queued
// runs at the new time; the task queued for the old time is stale.
func TestReleaseMovedLater(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	rel := b.newRelease("moved", time.Now().Add(3*time.Second))
	fans := b.consentMany(rel, "mv", 5, providers.Spotify, providers.YouTube)
	b.startWorker()
	waitFor(t, 30*time.Second, "the relay to queue the pre-saves", func() (bool, string) {
		st := b.statuses(fans)
		return st[store.PresaveEnqueued] == len(fans), fmt.Sprint(st)
	})
	newAt := time.Now().Add(4 * time.Second)
	rel.ReleaseAt = newAt.UTC()
	if _, moved, err := b.st.UpdateRelease(ctx, rel); err != nil || len(moved) != len(fans) {
		t.Fatalf("UpdateRelease: moved %d, err %v", len(moved), err)
	}
	// No DropPresaveTask: the old tasks stay queued and must find
	// themselves stale.
	b.waitFinal(fans, time.Minute)
	for _, f := range fans {
		ps, err := b.st.Presave(ctx, f.presave.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ps.Status != store.PresaveDone || ps.Generation != f.presave.Generation+1 {
			t.Errorf("%s %s: status %s generation %d", f.provider, f.user, ps.Status, ps.Generation)
		}
		// One attempt, started at or after the new time: the old
		// generation never started.
		if ps.Attempts != 1 || ps.StartedAt == nil || ps.StartedAt.Before(newAt.Add(-time.Second)) {
			t.Errorf("%s %s: attempts %d started %v, want 1 attempt at/after %s", f.provider, f.user, ps.Attempts, ps.StartedAt, newAt)
		}
		for a, r := range ps.Results {
			if r.At.Before(newAt.Add(-time.Second)) {
				t.Errorf("%s %s: action %s done at %s, before the new release time %s", f.provider, f.user, a, r.At, newAt)
			}
		}
	}
	b.assertExactlyOnce(fans)
}

// TestRedisFlushed: FLUSHDB (the test's FLUSHALL) after the pre-saves were
// queued loses nothing: the relay re-enqueues them from PostgreSQL.
func TestRedisFlushed(t *testing.T) {
	t.Parallel()
	// Every pre-save in the canary, so that all are queued before the
	// release time (the others would wait in PostgreSQL for its verdict).
	b := setup(t, map[string]string{"CANARY_SIZE": "1000"})
	rel := b.newRelease("flushed", time.Now().Add(5*time.Second))
	fans := b.consentMany(rel, "fl", 20, providers.Spotify, providers.YouTube)
	b.startWorker()
	waitFor(t, 30*time.Second, "the relay to queue the pre-saves", func() (bool, string) {
		st := b.statuses(fans)
		return st[store.PresaveEnqueued] == len(fans), fmt.Sprint(st)
	})
	if err := b.rd.Client.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	st := b.waitFinal(fans, time.Minute)
	if st[store.PresaveDone] != len(fans) {
		t.Fatalf("statuses %v, want all done", st)
	}
	b.assertExactlyOnce(fans)
	b.assertTokensGone(fans)
}

// TestYouTubeDailyBudget: with a daily budget for one fan's three YouTube
// actions (like and subscribe: 1 read + 50 write each; add_to_my_playlist:
// 2 reads + 2 writes), one pre-save completes and the others are deferred to the next
// Pacific midnight without failing; the fake never sees the budget
// exceeded.
func TestYouTubeDailyBudget(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"YOUTUBE_DAILY_UNITS": "204"}) // 51 + 51 + 102
	ctx := context.Background()
	rel := b.newRelease("budget", time.Now().Add(2*time.Second))
	fans := b.consentMany(rel, "bu", 3, providers.YouTube)
	b.startWorker()
	waitFor(t, time.Minute, "one done and the rest deferred for quota", func() (bool, string) {
		st := b.statuses(fans)
		deferred := 0
		for _, f := range fans {
			ps, err := b.st.Presave(ctx, f.presave.ID)
			if err != nil {
				t.Fatal(err)
			}
			if ps.Status == store.PresaveEnqueued && strings.Contains(ps.LastError, "quota") {
				deferred++
			}
		}
		return st[store.PresaveDone] == 1 && deferred == 2, fmt.Sprintf("%v, %d deferred for quota", st, deferred)
	})
	if used := b.fake.QuotaUsed("presave-dev"); used > 204 {
		t.Errorf("fake counted %d units, budget 204", used)
	}
	if st := b.statuses(fans); st[store.PresaveFailed] != 0 {
		t.Errorf("statuses %v: a spent quota must not fail pre-saves", st)
	}
}

// TestSweeperDeletesExpiredOAuthStates: consent starts that were never
// finished leave states behind; the sweeper deletes the expired ones (in
// batches) and leaves the live ones usable.
func TestSweeperDeletesExpiredOAuthStates(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"RELAY_BATCH": "2"})
	rel := b.newRelease("sweep-states", time.Now().Add(time.Hour))
	ctx := context.Background()
	st := store.OAuthState{
		Binding:  "binding-nonce",
		Provider: providers.Spotify, ReleaseID: rel.ID, Verifier: "v", Actions: []providers.Action{providers.ActionSave},
		FanZone: "UTC", ConsentVersion: "v1", ExpiresAt: time.Now().Add(-time.Minute),
	}
	for i := range 5 {
		if err := b.st.CreateOAuthState(ctx, fmt.Sprintf("abandoned-%d", i), st); err != nil {
			t.Fatal(err)
		}
	}
	st.ExpiresAt = time.Now().Add(time.Hour)
	if err := b.st.CreateOAuthState(ctx, "live", st); err != nil {
		t.Fatal(err)
	}
	b.startWorker()
	waitFor(t, 20*time.Second, "expired states deleted", func() (bool, string) {
		var n int
		if err := b.st.Pool().QueryRow(ctx, `SELECT count(*) FROM oauth_states`).Scan(&n); err != nil {
			return false, err.Error()
		}
		return n == 1, fmt.Sprintf("%d states left", n)
	})
	if _, _, err := b.st.ConsumeOAuthStateRelease(ctx, "live", time.Now()); err != nil {
		t.Errorf("the live state must survive the sweep: %v", err)
	}
}
