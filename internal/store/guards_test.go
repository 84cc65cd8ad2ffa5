package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
	"github.com/presave/presave/internal/store/storetest"
)

// TestCanaryChoosesTheTeamFirst: when a release comes due the claim takes
// its canary only, the team's canary fan (who consented last) first, and
// holds the others back, at the claim and at an attempt's start, until
// the guard opens.
func TestCanaryChoosesTheTeamFirst(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store
	ctx := context.Background()
	due := time.Now().Add(time.Minute)
	rel, err := st.CreateRelease(ctx, store.Release{Slug: "canary", Title: "T", Artist: "A", Timing: store.TimingFixed,
		ReleaseAt: due, SpotifyAlbumIDs: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	var fans []store.Presave
	for i := range 6 {
		now := time.Now()
		c, err := st.RecordConsent(ctx, store.Consent{Provider: providers.Spotify, AccountID: fmt.Sprintf("acct-%d", i),
			Token:     store.Token{RefreshToken: "r", AccessToken: "a", Expiry: now.Add(time.Hour), AuthorizedAt: now},
			ReleaseID: rel.ID, Actions: []providers.Action{providers.ActionSave}, ConsentedAt: now, ConsentVersion: "v1",
			FanZone: "UTC", DueAt: due}, nil)
		if err != nil {
			t.Fatal(err)
		}
		fans = append(fans, c.Presave)
	}
	team := fans[5]
	rel.CanaryFans = []uuid.UUID{team.FanID}
	if _, _, err := st.UpdateRelease(ctx, rel); err != nil {
		t.Fatal(err)
	}

	claimed, _, err := st.ClaimDuePresaves(ctx, 10*time.Minute, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for _, d := range claimed {
		ids = append(ids, d.ID)
	}
	gs, err := st.ReleaseGuards(ctx, rel.ID)
	if err != nil {
		t.Fatal(err)
	}
	var canary []uuid.UUID
	for _, g := range gs {
		if g.Provider == providers.Spotify {
			canary = g.Canary
		}
	}
	if len(canary) != 3 || canary[0] != team.ID || len(ids) != 3 {
		t.Fatalf("canary %v, claimed %v; want the team's pre-save %s first and two more, and only them claimed", canary, ids, team.ID)
	}
	for _, id := range ids {
		if !slices.Contains(canary, id) {
			t.Errorf("claimed %s, which is not in the canary", id)
		}
	}
	if more, _, _ := st.ClaimDuePresaves(ctx, 10*time.Minute, 100, 2); len(more) != 0 {
		t.Errorf("claimed %d more while the canary decides", len(more))
	}

	// A pre-save queued anyway (a task from before the canary) does not
	// start.
	var outside store.Presave
	for _, f := range fans {
		if !slices.Contains(canary, f.ID) {
			outside = f
			break
		}
	}
	d, ok, err := st.MarkDueEnqueued(ctx, outside.ID, outside.Generation)
	if err != nil || !ok {
		t.Fatalf("MarkDueEnqueued: %v %v", ok, err)
	}
	if _, _, err := st.BeginAttempt(ctx, d.ID, d.Generation, d.FanID, time.Minute, time.Hour); !errors.Is(err, store.ErrHeldBack) {
		t.Errorf("BeginAttempt outside the canary = %v, want ErrHeldBack", err)
	}
	if _, err := st.PostponePresave(ctx, d.ID, d.Generation); err != nil {
		t.Fatal(err)
	}

	if _, ok, err := st.OpenGuard(ctx, rel.ID, providers.Spotify, store.PauseCanary); err != nil || !ok {
		t.Fatalf("OpenGuard: %v %v", ok, err)
	}
	rest, _, err := st.ClaimDuePresaves(ctx, 10*time.Minute, 100, 2)
	if err != nil || len(rest) != 3 {
		t.Fatalf("after the guard opened: claimed %d (%v), want the other 3", len(rest), err)
	}
}

// TestPurgeUnneededTokensPages: the sweeper's purge looks at a page of
// tokens at a time from a cursor and comes round: a leaked token (its
// pre-save finished without the purge) goes, a needed one stays.
func TestPurgeUnneededTokensPages(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store
	ctx := context.Background()
	var fans []store.Presave
	for range 5 {
		fans = append(fans, jobsFixture(t, st, providers.Spotify, time.Now().Add(time.Hour)))
	}
	// Three leak: finished behind the store's back.
	for _, ps := range fans[:3] {
		if _, err := st.Pool().Exec(ctx, `UPDATE presaves SET status = 'done' WHERE id = $1`, ps.ID); err != nil {
			t.Fatal(err)
		}
	}
	var cur store.TokenCursor
	purged, pages := 0, 0
	for {
		got, next, err := st.PurgeUnneededTokens(ctx, 0, cur, 2)
		if err != nil {
			t.Fatal(err)
		}
		purged += len(got)
		pages++
		if next == (store.TokenCursor{}) {
			break
		}
		cur = next
	}
	if purged != 3 || pages != 3 {
		t.Errorf("purged %d tokens in %d pages of 2, want 3 in 3", purged, pages)
	}
	for i, ps := range fans {
		has, err := inspect.HasToken(ctx, st, ps.FanID, providers.Spotify)
		if err != nil {
			t.Fatal(err)
		}
		if want := i >= 3; has != want {
			t.Errorf("fan %d: token stored %v, want %v", i, has, want)
		}
	}
}

// TestBreakerPauseKeepsToItsOpening: a breaker's pause names the opening
// its evidence comes from; once the operator resumed (a new opening), an
// attempt from before cannot pause the release with the old evidence.
func TestBreakerPauseKeepsToItsOpening(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store
	ctx := context.Background()
	ps := jobsFixture(t, st, providers.Spotify, time.Now().Add(time.Hour))
	opened := func() time.Time {
		t.Helper()
		if _, ok, err := st.OpenGuard(ctx, ps.ReleaseID, providers.Spotify, ""); err != nil || !ok {
			t.Fatalf("OpenGuard: %v %v", ok, err)
		}
		gs, err := st.ReleaseGuards(ctx, ps.ReleaseID)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			if g.Provider == providers.Spotify && g.OpenedAt != nil {
				return *g.OpenedAt
			}
		}
		t.Fatal("no opening")
		return time.Time{}
	}
	why := store.Pause{Cause: store.PauseBreaker, Action: providers.ActionSave, Error: "not_found", Failed: 5, Seen: 20}
	first := opened()
	if ok, err := st.PauseGuard(ctx, ps.ReleaseID, providers.Spotify, store.GuardOpen, first, why); err != nil || !ok {
		t.Fatalf("pause of the first opening: %v %v", ok, err)
	}
	second := opened()
	if ok, err := st.PauseGuard(ctx, ps.ReleaseID, providers.Spotify, store.GuardOpen, first, why); err != nil || ok {
		t.Fatalf("a pause with the first opening's evidence after a resume: %v %v, want refused", ok, err)
	}
	if ok, err := st.PauseGuard(ctx, ps.ReleaseID, providers.Spotify, store.GuardOpen, second, why); err != nil || !ok {
		t.Fatalf("pause of the second opening: %v %v", ok, err)
	}
}
