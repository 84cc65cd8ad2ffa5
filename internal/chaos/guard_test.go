package chaos_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/presave/presave/internal/apiclient"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/scenario"
	"github.com/presave/presave/internal/store/inspect"
	"github.com/presave/presave/internal/wire"
)

// The campaign guard's scenarios: a mistake of the artist team's, or of
// the provider's, pauses the release instead of failing its fans.

// guardOf reads the release's guard for provider.
func (r *run) guardOf(provider string) wire.Guard {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rel, err := apiclient.GetRelease(ctx, r.h.HTTP, r.h.APIURL, r.h.AdminToken, r.rel.String())
	if err != nil {
		r.t.Fatal(err)
	}
	return rel.Guards[provider]
}

// waitPaused waits until the release pauses on provider.
func (r *run) waitPaused(provider string) wire.Guard {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		g := r.guardOf(provider)
		if g.State == "paused" {
			return g
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s did not pause: guard %+v, progress %+v", provider, g, r.progress())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// count is how many of the scenario's fans pre-save on provider.
func (r *run) count(provider string) int {
	n := 0
	for _, f := range r.fans {
		if f.Provider == provider {
			n++
		}
	}
	return n
}

// waitDone waits until n pre-saves on provider are done.
func (r *run) waitDone(provider string, n int) scenario.Progress {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p := r.progress()
		if p.DoneBy[providers.Name(provider)] >= n {
			return p
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: %d of %d done after 2 minutes: %+v", provider, p.DoneBy[providers.Name(provider)], n, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tokens counts the token rows stored (the scenario's schema).
func (r *run) tokens() int {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := inspect.CountSecrets(ctx, r.h.Store)
	if err != nil {
		r.t.Fatal(err)
	}
	return s.Tokens
}

// notLive makes the fake answer id as an ID it does not know until until
// (zero: from now on it knows it).
func (r *run) notLive(id string, until time.Time) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := apiclient.FakeControl(ctx, r.h.FakeURL, "notlive", map[string]any{"id": id, "until": until}); err != nil {
		r.t.Fatal(err)
	}
}

// TestWrongAlbumID: the team typed a wrong album ID. The canary pauses
// Spotify; no fan fails and no token goes. The team PATCHes the right ID
// and resumes: every pre-save is done, once.
func TestWrongAlbumID(t *testing.T) {
	t.Parallel()
	r := setup(t, "wrong_album", opts{workers: 2, latency: "10ms"})
	ctx := ctxFor(t, 5*time.Minute)
	right, wrong := r.spec.Spotify.AlbumIDs[0], "0wrongAlbumId000000000"
	r.notLive(wrong, time.Now().Add(24*time.Hour))
	if _, err := apiclient.UpdateRelease(ctx, r.h.HTTP, r.h.APIURL, r.h.AdminToken, r.rel.String(),
		map[string]any{"spotify": map[string]any{"album_ids": []string{wrong}}}); err != nil {
		t.Fatal(err)
	}
	r.connect()
	g := r.waitPaused("spotify")
	if g.Pause.Cause != "canary" || g.Pause.Action != "save" {
		t.Errorf("pause %+v, want the canary's save", *g.Pause)
	}
	// YouTube and Apple Music are not concerned: they drain meanwhile.
	spotify := r.count("spotify")
	r.waitDone("youtube", r.count("youtube"))
	p := r.waitDone("applemusic", r.count("applemusic"))
	tokens := r.tokens()
	if p.Failed+p.Partial != 0 || p.DoneBy["spotify"] != 0 || tokens != spotify {
		t.Fatalf("paused with %d failed, %d partial, %d Spotify done and %d of %d Spotify tokens; want none failed or done and every token kept",
			p.Failed, p.Partial, p.DoneBy["spotify"], tokens, spotify)
	}
	if _, err := apiclient.UpdateRelease(ctx, r.h.HTTP, r.h.APIURL, r.h.AdminToken, r.rel.String(),
		map[string]any{"spotify": map[string]any{"album_ids": []string{right}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := apiclient.ResumeRelease(ctx, r.h.HTTP, r.h.APIURL, r.h.AdminToken, r.rel.String(), "spotify"); err != nil {
		t.Fatal(err)
	}
	r.finish(fmt.Sprintf("canary paused on %s (%d of %d), 0 failed, %d tokens kept; PATCH + resume",
		g.Pause.Error, g.Pause.Failed, g.Pause.Seen, tokens))
}

// TestLateRelease: the album comes out after its time (the fake answers
// "non-existing ID" until then: 20 s here, three hours in the worker
// tests). Only the canary looks for it; nobody fails; everything is done
// within a minute of its appearing, without an operator.
func TestLateRelease(t *testing.T) {
	t.Parallel()
	r := setup(t, "late_release", opts{workers: 2, latency: "10ms"})
	appears := r.due.Add(20 * time.Second)
	r.notLive(r.spec.Spotify.AlbumIDs[0], appears)
	r.connect()
	g := r.waitPaused("spotify")
	if p := r.progress(); p.Failed+p.Partial != 0 {
		t.Fatalf("%d failed while the album was not out", p.Failed+p.Partial)
	}
	es := r.finish(fmt.Sprintf("album out 20s late: canary paused (%s), resumed by itself", g.Pause.Error))
	if after := es.Times.LastAction.Sub(appears); after > time.Minute {
		t.Errorf("the last action came %s after the album appeared, want within a minute", after)
	}
}

// TestVideoGoneMidDrain: the video goes private in the middle of the
// drain. The breaker pauses YouTube within its window (50 attempt ends
// here: a third of a small run's fans are YouTube's, too few for the
// default window's minimum of 20 errors); Spotify and Apple Music carry
// on to the end. The video back and YouTube resumed, everyone is done.
func TestVideoGoneMidDrain(t *testing.T) {
	t.Parallel()
	const window = 50
	r := setup(t, "video_gone", opts{workers: 2, env: []string{fmt.Sprintf("BREAKER_WINDOW=%d", window)}})
	ctx := ctxFor(t, 5*time.Minute)
	video := r.spec.YouTube.VideoID
	r.connect()
	r.waitFinished(0.3)
	r.notLive(video, time.Now().Add(24*time.Hour))
	g := r.waitPaused("youtube")
	if g.Pause.Cause != "breaker" || g.Pause.Error != "videoNotFound" || g.Pause.Seen > window {
		t.Errorf("pause %+v, want the breaker on videoNotFound within its window of %d", *g.Pause, window)
	}
	for _, other := range []string{"spotify", "applemusic"} {
		if g := r.guardOf(other); g.State != "open" {
			t.Errorf("%s guard %s, want open", other, g.State)
		}
	}
	r.waitDone("applemusic", r.count("applemusic"))
	p := r.waitDone("spotify", r.count("spotify"))
	if p.Failed+p.Partial != 0 {
		t.Fatalf("%d failed: the breaker must hold, not fail", p.Failed+p.Partial)
	}
	if g := r.guardOf("youtube"); g.State != "paused" {
		t.Fatalf("youtube %s before the resume, want still paused", g.State)
	}
	r.notLive(video, time.Time{})
	if _, err := apiclient.ResumeRelease(ctx, r.h.HTTP, r.h.APIURL, r.h.AdminToken, r.rel.String(), "youtube"); err != nil {
		t.Fatal(err)
	}
	r.finish(fmt.Sprintf("breaker paused YouTube after %d of %d target errors (%d held); Spotify and Apple Music went on",
		g.Pause.Failed, g.Pause.Seen, p.Held))
}
