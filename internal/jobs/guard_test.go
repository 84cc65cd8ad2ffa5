package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
)

// guardOf reads the release's guard for p.
func (b *bundle) guardOf(rel store.Release, p providers.Name) store.Guard {
	b.t.Helper()
	gs, err := b.st.ReleaseGuards(context.Background(), rel.ID)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, g := range gs {
		if g.Provider == p {
			return g
		}
	}
	b.t.Fatalf("release %s has no guard for %s", rel.Slug, p)
	return store.Guard{}
}

// canaryOf is the set of the release's canary pre-saves at p.
func (b *bundle) canaryOf(rel store.Release, p providers.Name) map[uuid.UUID]bool {
	b.t.Helper()
	out := map[uuid.UUID]bool{}
	for _, id := range b.guardOf(rel, p).Canary {
		out[id] = true
	}
	return out
}

// waitPaused waits until the release's guard for p is paused.
func (b *bundle) waitPaused(rel store.Release, p providers.Name, d time.Duration) store.Guard {
	b.t.Helper()
	var g store.Guard
	waitFor(b.t, d, p.Label()+" to pause", func() (bool, string) {
		g = b.guardOf(rel, p)
		return g.State == store.GuardPaused, fmt.Sprint(g.State, " ", b.statusesOf(rel, p))
	})
	return g
}

// statusesOf counts the release's pre-saves at p by status.
func (b *bundle) statusesOf(rel store.Release, p providers.Name) map[string]int {
	b.t.Helper()
	counts, err := b.st.ReleaseCounts(context.Background(), rel.ID)
	if err != nil {
		b.t.Fatal(err)
	}
	return counts[p]
}

// tokensKept counts the fans whose token is still stored.
func (b *bundle) tokensKept(fans []fan) int {
	b.t.Helper()
	n := 0
	for _, f := range fans {
		has, err := inspect.HasToken(context.Background(), b.st, f.presave.FanID, f.provider)
		if err != nil {
			b.t.Fatal(err)
		}
		if has {
			n++
		}
	}
	return n
}

// TestCanaryPausesAWrongAlbum: a release naming an album Spotify does not
// know pauses at its canary: the canary's other actions are done, nobody
// failed, no token was purged, and the fans behind the canary never ran.
// Fixing the ID and resuming delivers everyone exactly once.
func TestCanaryPausesAWrongAlbum(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"CANARY_SIZE": "5"})
	ctx := context.Background()
	const wrong = "wrongalbum"
	b.fake.SetNotLiveUntil(wrong, time.Now().Add(24*time.Hour)) // an ID Spotify does not know
	rel := b.newRelease("wrong-album", time.Now().Add(2*time.Second))
	rel.SpotifyAlbumIDs = []string{wrong}
	rel, _, err := b.st.UpdateRelease(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	fans := b.consentMany(rel, "wa", 20, providers.Spotify)
	b.startWorker()

	g := b.waitPaused(rel, providers.Spotify, time.Minute)
	if g.Pause.Cause != store.PauseCanary || g.Pause.Action != providers.ActionSave || g.Pause.Error != "non_existing_id" ||
		g.Pause.Failed != 5 || g.Pause.Seen != 5 {
		t.Errorf("pause = %+v, want the canary's save failing non_existing_id on 5 of 5", *g.Pause)
	}
	if n := b.sumMetric("presave_release_paused", providers.Spotify); n != 1 {
		t.Errorf("presave_release_paused{provider=spotify} = %v, want 1", n)
	}
	st := b.statusesOf(rel, providers.Spotify)
	if st["failed"] != 0 || st["partial"] != 0 || st["done"] != 0 {
		t.Errorf("statuses %v while paused: nobody may fail or finish", st)
	}
	if kept := b.tokensKept(fans); kept != len(fans) {
		t.Errorf("%d of %d tokens kept while paused", kept, len(fans))
	}
	attempted := 0
	for _, f := range fans {
		ps, err := b.st.Presave(ctx, f.presave.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ps.Attempts > 0 {
			attempted++
		}
	}
	if attempted != 5 {
		t.Errorf("%d pre-saves attempted while the canary decided, want the canary's 5", attempted)
	}

	// The operator fixes the ID and resumes.
	rel.SpotifyAlbumIDs = []string{spAlbum}
	if _, _, err := b.st.UpdateRelease(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.st.OpenGuard(ctx, rel.ID, providers.Spotify, ""); err != nil {
		t.Fatal(err)
	}
	st2 := b.waitFinal(fans, time.Minute)
	if st2[store.PresaveDone] != len(fans) {
		t.Fatalf("statuses %v after the fix, want all done", st2)
	}
	b.assertExactlyOnce(fans)
	b.assertTokensGone(fans)
	if n := b.sumMetric("presave_release_paused", providers.Spotify); n != 0 {
		t.Errorf("presave_release_paused{provider=spotify} = %v after resume, want 0", n)
	}
}

// TestLateReleaseWaitsForTheCanary: the release comes out three hours
// after its time (Spotify answers "non-existing ID" until then). Only the
// canary probes; nobody fails; once the album appears the canary passes
// by itself and every pre-save is done within a minute, the others in one
// attempt each.
func TestLateReleaseWaitsForTheCanary(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"CANARY_SIZE": "3"})
	ctx := context.Background()
	b.fake.SetNotLiveUntil(spAlbum, time.Now().Add(24*time.Hour))
	rel := b.newRelease("late", time.Now().Add(-3*time.Hour)) // went live (on paper) three hours ago
	fans := b.consentMany(rel, "late", 12, providers.Spotify)
	b.startWorker()

	b.waitPaused(rel, providers.Spotify, time.Minute)
	appears := time.Now().Add(3 * time.Second)
	b.fake.SetNotLiveUntil(spAlbum, appears)
	st := b.waitFinal(fans, time.Minute)
	if st[store.PresaveDone] != len(fans) {
		t.Fatalf("statuses %v, want all done", st)
	}
	canary := b.canaryOf(rel, providers.Spotify)
	for _, f := range fans {
		ps, err := b.st.Presave(ctx, f.presave.ID)
		if err != nil {
			t.Fatal(err)
		}
		if late := ps.CompletedAt.Sub(appears); late > time.Minute {
			t.Errorf("%s done %s after the album appeared", f.user, late)
		}
		if !canary[ps.ID] && ps.Attempts != 1 {
			t.Errorf("%s (behind the canary) took %d attempts, want 1", f.user, ps.Attempts)
		}
	}
	b.assertExactlyOnce(fans)
	b.assertTokensGone(fans)
}

// TestBreakerPausesYouTubeOnly: the video becomes unavailable in the
// middle of the drain. The breaker pauses YouTube within its window,
// nobody fails, the fans it reached keep their tokens; Spotify carries
// on to the end. The video back and YouTube resumed, everyone is done
// exactly once.
func TestBreakerPausesYouTubeOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"CANARY_SIZE": "2", "BREAKER_WINDOW": "20", "WORKER_CONCURRENCY": "4"})
	ctx := context.Background()
	b.fake.SetLatency(providers.YouTube, 30*time.Millisecond)
	b.fake.SetLatency(providers.Spotify, 30*time.Millisecond)
	rel := b.newRelease("breaker", time.Now().Add(2*time.Second))
	fans := b.consentMany(rel, "br", 40, providers.Spotify, providers.YouTube)
	b.startWorker()

	waitFor(t, time.Minute, "a part of the YouTube drain", func() (bool, string) {
		st := b.statusesOf(rel, providers.YouTube)
		return st["done"] >= 8, fmt.Sprint(st)
	})
	b.fake.SetNotLiveUntil(ytVideo, time.Now().Add(24*time.Hour))
	doneAtTrip := b.statusesOf(rel, providers.YouTube)["done"]
	g := b.waitPaused(rel, providers.YouTube, time.Minute)
	// like or add_to_my_playlist, whichever of the video's actions an
	// attempt reached first.
	if g.Pause.Cause != store.PauseBreaker || g.Pause.Action == providers.ActionSubscribe || g.Pause.Error != "videoNotFound" ||
		g.Pause.Seen > 20 {
		t.Errorf("pause = %+v, want the breaker on a video action (videoNotFound) within a window of 20", *g.Pause)
	}
	var spotifyFans, youtubeFans []fan
	for _, f := range fans {
		if f.provider == providers.Spotify {
			spotifyFans = append(spotifyFans, f)
		} else {
			youtubeFans = append(youtubeFans, f)
		}
	}
	if st := b.waitFinal(spotifyFans, time.Minute); st[store.PresaveDone] != len(spotifyFans) {
		t.Errorf("spotify statuses %v, want all done while YouTube is paused", st)
	}
	st := b.statusesOf(rel, providers.YouTube)
	if st["failed"] != 0 || st["partial"] != 0 {
		t.Errorf("youtube statuses %v: nobody may fail", st)
	}
	if g := b.guardOf(rel, providers.Spotify); g.State != store.GuardOpen {
		t.Errorf("spotify guard %s, want open", g.State)
	}
	if kept, want := b.tokensKept(youtubeFans), len(youtubeFans)-st["done"]; kept != want {
		t.Errorf("%d YouTube tokens kept, want %d (every fan not done)", kept, want)
	}
	t.Logf("youtube: %d done when the video went away; at the pause %v", doneAtTrip, st)

	b.fake.SetNotLiveUntil(ytVideo, time.Time{})
	if _, ok, err := b.st.OpenGuard(ctx, rel.ID, providers.YouTube, ""); err != nil || !ok {
		t.Fatalf("resume: %v %v", ok, err)
	}
	if st := b.waitFinal(youtubeFans, time.Minute); st[store.PresaveDone] != len(youtubeFans) {
		t.Fatalf("youtube statuses %v after resume, want all done", st)
	}
	b.assertExactlyOnce(fans)
	b.assertTokensGone(fans)
}

// TestHoldDeadline: a paused release nobody fixes. At HOLD_MAX after due,
// the held pre-saves fail with their own reason, the ones waiting behind
// the canary with hold_expired, and every token is purged.
func TestHoldDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"CANARY_SIZE": "3", "HOLD_MAX": "3h", "NOT_LIVE_GIVE_UP": "1h"})
	ctx := context.Background()
	const wrong = "neveralbum"
	b.fake.SetNotLiveUntil(wrong, time.Now().Add(24*time.Hour))
	rel := b.newRelease("hold", time.Now().Add(-2*time.Hour))
	rel.SpotifyAlbumIDs = []string{wrong}
	rel, _, err := b.st.UpdateRelease(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	fans := b.consentMany(rel, "hd", 8, providers.Spotify)
	b.startWorker()
	// Past NOT_LIVE_GIVE_UP the canary's save fails for good: with the
	// guard in its canary, the canary pre-saves are held.
	b.waitPaused(rel, providers.Spotify, time.Minute)
	waitFor(t, time.Minute, "the canary to be held", func() (bool, string) {
		st := b.statusesOf(rel, providers.Spotify)
		return st["held"] == 3, fmt.Sprint(st)
	})
	if kept := b.tokensKept(fans); kept != len(fans) {
		t.Fatalf("%d of %d tokens kept while held", kept, len(fans))
	}

	// A worker whose hold deadline has passed for this release.
	b.env["HOLD_MAX"] = "1h"
	b.startWorker()
	// Held is a resting status, so waitFinal alone could return while the
	// deadline is failing the held pre-saves one by one.
	waitFor(t, time.Minute, "the hold deadline to settle every held pre-save", func() (bool, string) {
		st := b.statuses(fans)
		return st[store.PresaveHeld] == 0, fmt.Sprint(st)
	})
	st := b.waitFinal(fans, time.Minute)
	if st[store.PresaveFailed] != len(fans)-3 || st[store.PresavePartial] != 3 {
		t.Fatalf("statuses %v, want the canary partial (its other actions were done) and the rest failed at the hold deadline", st)
	}
	canary := b.canaryOf(rel, providers.Spotify)
	for _, f := range fans {
		ps, err := b.st.Presave(ctx, f.presave.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := "hold_expired"
		if canary[ps.ID] {
			want = "save: not_live"
		}
		if ps.LastError != want {
			t.Errorf("%s: last_error %q, want %q", f.user, ps.LastError, want)
		}
	}
	b.assertTokensGone(fans)
	b.waitRevocationsDone(time.Minute)
}

// TestResolvedByCodes: a release naming its Spotify album by UPC and its
// tracks by ISRC only. The codes are searched once per release (three
// searches for twelve fans), on the app's token; the pre-saves wait for
// them and then drain. A UPC that reaches the catalogue after the
// release time defers the pre-saves (nobody fails) and is searched again
// with backoff, not once per fan.
func TestResolvedByCodes(t *testing.T) {
	t.Parallel()
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("late=%v", late), func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			ctx := context.Background()
			const upc, isrc1, isrc2 = "602435123456", "USRC17607839", "USRC17607840"
			albumLive := time.Now()
			if late {
				albumLive = time.Now().Add(8 * time.Second)
			}
			b.fake.SetCatalogue("upc", upc, spAlbum, albumLive)
			b.fake.SetCatalogue("isrc", isrc1, spTrack1, time.Now())
			b.fake.SetCatalogue("isrc", isrc2, spTrack2, time.Now())
			rel := b.newRelease("by-codes", time.Now().Add(3*time.Second))
			rel.SpotifyAlbumIDs, rel.SpotifyTrackIDs = nil, nil
			rel.SpotifyUPC, rel.SpotifyISRCs = upc, []string{isrc1, isrc2}
			rel, _, err := b.st.UpdateRelease(ctx, rel)
			if err != nil {
				t.Fatal(err)
			}
			if rel.SpotifyResolution.State != store.ResolutionPending {
				t.Fatalf("resolution %s, want pending", rel.SpotifyResolution.State)
			}
			fans := b.consentMany(rel, "codes", 12, providers.Spotify)
			b.startWorker()
			st := b.waitFinal(fans, time.Minute)
			if st[store.PresaveDone] != len(fans) {
				t.Fatalf("statuses %v, want all done", st)
			}
			b.assertExactlyOnce(fans)
			got, err := b.st.Release(ctx, rel.ID)
			if err != nil {
				t.Fatal(err)
			}
			res := got.SpotifyResolution
			if res.State != store.ResolutionResolved || res.Found["upc:"+upc].ID != spAlbum || res.Found["isrc:"+isrc2].ID != spTrack2 ||
				len(got.SpotifyAlbumIDs) != 1 || len(got.SpotifyTrackIDs) != 2 {
				t.Errorf("resolution %+v, album %v, tracks %v", res, got.SpotifyAlbumIDs, got.SpotifyTrackIDs)
			}
			searches := b.fake.Calls("GET /v1/search", 200)
			switch {
			case !late && searches != 3:
				t.Errorf("%d searches, want 3: one per code, none per fan", searches)
			case late && (searches < 4 || searches > 7):
				t.Errorf("%d searches for a UPC 8 s late, want the ISRCs once and the UPC a few times with backoff", searches)
			}
			if n := b.fake.Calls("GET /v1/search", 401) + b.fake.Calls("GET /v1/search", 403); n != 0 {
				t.Errorf("%d searches refused", n)
			}
		})
	}
}

// TestUnresolvedPauses: a UPC still not in the catalogue NOT_LIVE_GIVE_UP
// after the release time pauses the release (nobody fails, every token
// kept); the album reaching the catalogue resolves it, lifts the pause
// and drains it.
func TestUnresolvedPauses(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"NOT_LIVE_GIVE_UP": "1h"})
	ctx := context.Background()
	const upc = "602435999999"
	rel := b.newRelease("unresolved", time.Now().Add(-2*time.Hour))
	rel.SpotifyAlbumIDs, rel.SpotifyUPC = nil, upc
	rel, _, err := b.st.UpdateRelease(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	fans := b.consentMany(rel, "unres", 6, providers.Spotify)
	b.startWorker()
	g := b.waitPaused(rel, providers.Spotify, time.Minute)
	if g.Pause.Cause != store.PauseUnresolved || g.Pause.Error != "not_in_catalogue: upc:"+upc {
		t.Errorf("pause %+v, want unresolved upc", *g.Pause)
	}
	if st := b.statusesOf(rel, providers.Spotify); st["pending"] != len(fans) {
		t.Errorf("statuses %v while unresolved, want every pre-save waiting", st)
	}
	if kept := b.tokensKept(fans); kept != len(fans) {
		t.Errorf("%d of %d tokens kept", kept, len(fans))
	}
	b.fake.SetCatalogue("upc", upc, spAlbum, time.Now())
	if st := b.waitFinal(fans, time.Minute); st[store.PresaveDone] != len(fans) {
		t.Fatalf("statuses %v after the album appeared, want all done", st)
	}
	b.assertExactlyOnce(fans)
	b.assertTokensGone(fans)
}
