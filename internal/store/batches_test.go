package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
	"github.com/presave/presave/internal/store/storetest"
)

// A batch starts and ends pre-saves of one fan together: each Start and
// Finish gets its own outcome, a repeated Start finds the lease taken,
// and the fan's grant, needed by no pre-save once the batch ends, is
// deleted and queued for revocation exactly once.
func TestBatchesOfOneFan(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store.WithRevocable(revocable)
	c := ctx(t)
	a := consent(t, st, release(t, st, "batch-a"), providers.YouTube, "acct", "refresh-1", uuid.Nil).Presave
	fan := a.FanID
	b := consent(t, st, release(t, st, "batch-b"), providers.YouTube, "acct", "refresh-1", fan).Presave
	if _, _, err := st.ClaimDuePresaves(c, 48*time.Hour, 10, claimAll); err != nil {
		t.Fatal(err)
	}
	started, err := st.BeginAttempts(c, time.Minute, 48*time.Hour, []store.Start{
		{ID: a.ID, Generation: a.Generation, Fan: fan},
		{ID: b.ID, Generation: b.Generation, Fan: fan},
		{ID: a.ID, Generation: a.Generation, Fan: fan},
		{ID: b.ID, Generation: b.Generation + 1, Fan: fan},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []uuid.UUID{a.ID, b.ID} {
		if s := started[i]; !s.OK || s.Err != nil || s.Attempt.Presave.ID != want || s.Attempt.Token.RefreshToken != "refresh-1" {
			t.Errorf("start %d = ok %v, err %v, presave %s; want started with the grant", i, s.OK, s.Err, s.Attempt.Presave.ID)
		}
	}
	var leased *store.LeasedError
	if s := started[2]; s.OK || !errors.As(s.Err, &leased) {
		t.Errorf("repeated start = ok %v, err %v; want a *LeasedError", s.OK, s.Err)
	}
	if s := started[3]; s.OK || s.Err != nil {
		t.Errorf("stale start = ok %v, err %v; want not started, no error", s.OK, s.Err)
	}

	ok := map[providers.Action]store.ActionResult{providers.ActionSave: {Outcome: providers.OutcomeOK, At: time.Now()}}
	fins, err := st.FinishPresaves(c, []store.Finish{
		{ID: a.ID, Generation: a.Generation, Provider: providers.YouTube, Status: store.PresaveDone, Results: ok},
		{ID: b.ID, Generation: b.Generation, Provider: providers.YouTube, Status: store.PresaveFailed, LastError: "x"},
		{ID: b.ID, Generation: b.Generation + 1, Provider: providers.YouTube, Status: store.PresaveDone},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !fins[0].Applied || !fins[0].Purge.Deleted || fins[0].Purge.RevocationID == uuid.Nil || fins[0].RevokeToken != "refresh-1" {
		t.Errorf("first finish = %+v; want the grant deleted and its revocation", fins[0])
	}
	if !fins[1].Applied || fins[1].Purge.RevocationID != uuid.Nil || fins[1].RevokeToken != "" {
		t.Errorf("second finish = %+v; want applied, the shared grant revoked by the first only", fins[1])
	}
	if fins[2].Applied {
		t.Errorf("stale finish applied: %+v", fins[2])
	}
	secrets, err := inspect.CountSecrets(c, st)
	if err != nil || secrets.Tokens != 0 || secrets.Revocations != 1 {
		t.Fatalf("after the batch: %+v, %v; want no token and one revocation", secrets, err)
	}
	for id, want := range map[uuid.UUID]store.PresaveStatus{a.ID: store.PresaveDone, b.ID: store.PresaveFailed} {
		if got, _ := st.Presave(c, id); got.Status != want {
			t.Errorf("pre-save %s is %s, want %s", id, got.Status, want)
		}
	}
	if err := st.DeleteRevocations(c, []uuid.UUID{fins[0].Purge.RevocationID}); err != nil {
		t.Fatal(err)
	}
	if secrets, _ := inspect.CountSecrets(c, st); secrets.Revocations != 0 {
		t.Errorf("revocation left after DeleteRevocations: %+v", secrets)
	}
}

// A batch that ends one of a fan's two pre-saves keeps the grant the
// other still needs.
func TestBatchFinishKeepsGrantOthersNeed(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store.WithRevocable(revocable)
	c := ctx(t)
	a := consent(t, st, release(t, st, "keep-a"), providers.YouTube, "acct", "refresh-1", uuid.Nil).Presave
	fan := a.FanID
	consent(t, st, release(t, st, "keep-b"), providers.YouTube, "acct", "refresh-1", fan)
	other := consent(t, st, release(t, st, "keep-c"), providers.YouTube, "acct-2", "refresh-2", uuid.Nil).Presave
	if _, _, err := st.ClaimDuePresaves(c, 48*time.Hour, 10, claimAll); err != nil {
		t.Fatal(err)
	}
	for _, p := range []store.Presave{a, other} {
		if _, ok, err := st.BeginAttempt(c, p.ID, p.Generation, p.FanID, time.Minute, 48*time.Hour); !ok || err != nil {
			t.Fatalf("begin %s: %v, %v", p.ID, ok, err)
		}
	}
	fins, err := st.FinishPresaves(c, []store.Finish{
		{ID: a.ID, Generation: a.Generation, Provider: providers.YouTube, Status: store.PresaveFailed, LastError: "x"},
		{ID: other.ID, Generation: other.Generation, Provider: providers.YouTube, Status: store.PresaveFailed, LastError: "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if fins[0].Purge.Deleted || !fins[1].Purge.Deleted || fins[1].RevokeToken != "refresh-2" {
		t.Errorf("finishes = %+v; want the needed grant kept and the other fan's purged", fins)
	}
	if has, _ := inspect.HasToken(c, st, fan, providers.YouTube); !has {
		t.Error("the grant another open pre-save needs was deleted")
	}
}
