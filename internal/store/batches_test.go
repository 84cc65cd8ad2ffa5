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

// A batch starts pre-saves of one fan: each Start gets its own outcome,
// and one attempt at a time holds the fan's grant: a second pre-save of
// the fan, or a repeated Start, finds it leased until the first ends.
func TestBatchStartsLeaseTheGrant(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store.WithRevocable(revocable)
	c := ctx(t)
	a := consent(t, st, release(t, st, "lease-a"), providers.YouTube, "acct", "refresh-1", uuid.Nil).Presave
	fan := a.FanID
	b := consent(t, st, release(t, st, "lease-b"), providers.YouTube, "acct", "refresh-1", fan).Presave
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
	first, second := 0, 1
	if started[1].OK {
		// Which of the fan's two gets the grant is PostgreSQL's choice.
		first, second = 1, 0
	}
	if s := started[first]; !s.OK || s.Err != nil || s.Attempt.Token.RefreshToken != "refresh-1" {
		t.Fatalf("first start = ok %v, err %v; want started with the grant", s.OK, s.Err)
	}
	var leased *store.LeasedError
	for _, i := range []int{second, 2} {
		if s := started[i]; s.OK || !errors.As(s.Err, &leased) {
			t.Errorf("start %d = ok %v, err %v; want a *LeasedError (the grant is taken)", i, s.OK, s.Err)
		}
	}
	if s := started[3]; s.OK || s.Err != nil {
		t.Errorf("stale start = ok %v, err %v; want not started, no error", s.OK, s.Err)
	}
	ps := []store.Presave{a, b}
	holder, waiter := ps[first], ps[second]
	fins, err := st.FinishPresaves(c, []store.Finish{{ID: holder.ID, Generation: holder.Generation, Provider: providers.YouTube,
		Status: store.PresaveDone, Results: okSave()}})
	if err != nil || !fins[0].Applied || fins[0].Purge.Deleted {
		t.Fatalf("finish = %+v, %v; want applied with the grant kept for the other pre-save", fins, err)
	}
	if _, ok, err := st.BeginAttempt(c, waiter.ID, waiter.Generation, fan, time.Minute, 48*time.Hour); !ok || err != nil {
		t.Fatalf("start after the first finished = %v, %v; want started (the grant was given back)", ok, err)
	}
}

// A batch ends pre-saves of one fan together: the fan's grant, needed by
// none once the batch ends, is deleted and queued for revocation exactly
// once, and each Finish gets its own outcome.
func TestBatchFinishesOfOneFan(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store.WithRevocable(revocable)
	c := ctx(t)
	a := consent(t, st, release(t, st, "batch-a"), providers.YouTube, "acct", "refresh-1", uuid.Nil).Presave
	fan := a.FanID
	b := consent(t, st, release(t, st, "batch-b"), providers.YouTube, "acct", "refresh-1", fan).Presave
	if _, _, err := st.ClaimDuePresaves(c, 48*time.Hour, 10, claimAll); err != nil {
		t.Fatal(err)
	}
	// Both running at once: the first attempt's leases lapse (its worker
	// died), so the second takes the grant.
	if _, ok, err := st.BeginAttempt(c, a.ID, a.Generation, fan, time.Millisecond, 48*time.Hour); !ok || err != nil {
		t.Fatalf("start a: %v, %v", ok, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, ok, err := st.BeginAttempt(c, b.ID, b.Generation, fan, time.Minute, 48*time.Hour)
		var leased *store.LeasedError
		if ok {
			break
		}
		if !errors.As(err, &leased) || time.Now().After(deadline) {
			t.Fatalf("start b after a's lease lapsed: %v, %v", ok, err)
		}
	}
	fins, err := st.FinishPresaves(c, []store.Finish{
		{ID: a.ID, Generation: a.Generation, Provider: providers.YouTube, Status: store.PresaveDone, Results: okSave()},
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

func okSave() map[providers.Action]store.ActionResult {
	return map[providers.Action]store.ActionResult{providers.ActionSave: {Outcome: providers.OutcomeOK, At: time.Now()}}
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

// The relay's check before a wave of claims analyses presaves only when
// the statistics count far fewer pre-saves in flight than it claimed.
func TestRefreshPresaveStatistics(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store
	c := ctx(t)
	if did, err := st.RefreshPresaveStatistics(c, 0); err != nil || did {
		t.Fatalf("with nothing in flight: analysed %v, %v; want no ANALYZE", did, err)
	}
	if did, err := st.RefreshPresaveStatistics(c, 1000); err != nil || !did {
		t.Fatalf("1,000 claimed, none counted: analysed %v, %v; want an ANALYZE", did, err)
	}
}
