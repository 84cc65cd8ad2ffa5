package store_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/storetest"
)

func TestOAuthStateIsSingleUseAndStoredHashed(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	r := release(t, b.Store, "state-single-use")
	ip := store.AnonymizeIP(netip.MustParseAddr("198.51.100.23"))
	now := time.Now()
	in := store.OAuthState{
		Binding:  "binding-nonce",
		Provider: providers.Spotify, ReleaseID: r.ID, Verifier: "verifier-secret-value",
		Actions: []providers.Action{providers.ActionSave}, FanZone: "Europe/Paris", ConsentVersion: "v1",
		ClientIPPrefix: &ip, ExpiresAt: now.Add(10 * time.Minute),
	}
	const state = "the-state-string"
	if err := b.Store.CreateOAuthState(ctx(t), state, in); err != nil {
		t.Fatal(err)
	}

	// Only the hash and a sealed verifier reach the database.
	var hash, sealed []byte
	if err := b.Store.Pool().QueryRow(ctx(t), `SELECT state_hash, verifier_sealed FROM oauth_states`).Scan(&hash, &sealed); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(state))
	if !bytes.Equal(hash, want[:]) {
		t.Errorf("state_hash is not sha256(state)")
	}
	if bytes.Contains(sealed, []byte(in.Verifier)) {
		t.Errorf("verifier stored in plaintext")
	}

	got, _, err := b.Store.ConsumeOAuthStateRelease(ctx(t), state, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Verifier != in.Verifier || got.ReleaseID != r.ID || got.Provider != providers.Spotify ||
		got.FanZone != "Europe/Paris" || got.ConsentVersion != "v1" || got.FanID != uuid.Nil ||
		got.ClientIPPrefix == nil || *got.ClientIPPrefix != ip || len(got.Actions) != 1 {
		t.Errorf("consumed state = %+v", got)
	}
	if _, _, err := b.Store.ConsumeOAuthStateRelease(ctx(t), state, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second consume: err = %v, want ErrNotFound", err)
	}
	if _, _, err := b.Store.ConsumeOAuthStateRelease(ctx(t), "never-issued", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown state: err = %v, want ErrNotFound", err)
	}
}

func TestOAuthStateExpiresAndIsCleanedUp(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	r := release(t, b.Store, "state-expiry")
	now := time.Now()
	st := store.OAuthState{
		Binding:  "binding-nonce",
		Provider: providers.YouTube, ReleaseID: r.ID, Verifier: "v", Actions: []providers.Action{providers.ActionLike},
		FanZone: "UTC", ConsentVersion: "v1", ExpiresAt: now.Add(10 * time.Minute),
	}
	if err := b.Store.CreateOAuthState(ctx(t), "late", st); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Store.ConsumeOAuthStateRelease(ctx(t), "late", now.Add(11*time.Minute)); !errors.Is(err, store.ErrStateExpired) {
		t.Fatalf("err = %v, want ErrStateExpired", err)
	}
	if _, _, err := b.Store.ConsumeOAuthStateRelease(ctx(t), "late", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an expired state must be gone after its first use: err = %v", err)
	}

	// States that expired unused are deleted in batches; live ones stay.
	st.ExpiresAt = now.Add(-time.Minute)
	for _, s := range []string{"stale-1", "stale-2", "stale-3"} {
		if err := b.Store.CreateOAuthState(ctx(t), s, st); err != nil {
			t.Fatal(err)
		}
	}
	st.ExpiresAt = now.Add(10 * time.Minute)
	if err := b.Store.CreateOAuthState(ctx(t), "fresh", st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{2, 1, 0} {
		n, err := b.Store.DeleteExpiredOAuthStates(ctx(t), 2)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("DeleteExpiredOAuthStates deleted %d, want %d", n, want)
		}
	}
	var n int
	if err := b.Store.Pool().QueryRow(ctx(t), `SELECT count(*) FROM oauth_states`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("oauth_states rows = %d, want 1 (only the live one)", n)
	}
	if _, _, err := b.Store.ConsumeOAuthStateRelease(ctx(t), "fresh", now); err != nil {
		t.Errorf("the live state must survive the clean-up: %v", err)
	}
}

func TestOAuthStateRemembersTheFan(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	r := release(t, b.Store, "state-fan")
	c := consent(t, b.Store, r, providers.Spotify, "acct-1", "refresh-1", uuid.Nil)
	st := store.OAuthState{
		Binding:  "binding-nonce",
		Provider: providers.YouTube, ReleaseID: r.ID, Verifier: "v", Actions: []providers.Action{providers.ActionLike},
		FanZone: "UTC", ConsentVersion: "v1", FanID: c.FanID, ExpiresAt: time.Now().Add(time.Minute),
	}
	if err := b.Store.CreateOAuthState(ctx(t), "s", st); err != nil {
		t.Fatal(err)
	}
	got, _, err := b.Store.ConsumeOAuthStateRelease(ctx(t), "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got.FanID != c.FanID {
		t.Errorf("FanID = %v, want %v", got.FanID, c.FanID)
	}
}

func TestZoneKnownAndReleasesByID(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	for zone, want := range map[string]bool{"Europe/Paris": true, "UTC": true, "America/New_York": true, "Mars/Olympus_Mons": false} {
		got, err := b.Store.ZoneKnown(ctx(t), zone)
		if err != nil || got != want {
			t.Errorf("ZoneKnown(%q) = %v, %v; want %v", zone, got, err, want)
		}
	}
	r1 := release(t, b.Store, "by-id-1")
	r2 := release(t, b.Store, "by-id-2")
	got, err := b.Store.ReleasesByID(ctx(t), []uuid.UUID{r1.ID, r2.ID, uuid.New()})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[r1.ID].Slug != "by-id-1" || got[r2.ID].Slug != "by-id-2" {
		t.Errorf("ReleasesByID = %v", got)
	}
}
