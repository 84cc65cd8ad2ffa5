package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/storetest"
)

// A consent due within the relay window is recorded as enqueued by the
// consent transaction itself; a repeated consent keeps a finished
// pre-save finished.
func TestRecordConsentEnqueuesInTheTransaction(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	r := release(t, b.Store, "consent-enqueue")
	// Past its canary: in it, a consent waits as pending for the relay
	// (TestConsentWaitsForTheCanary in the API's tests).
	if _, _, err := b.Store.OpenGuard(ctx(t), r.ID, providers.Spotify, ""); err != nil {
		t.Fatal(err)
	}
	record := func(fan uuid.UUID, enqueue bool) store.Consented {
		t.Helper()
		c, err := b.Store.RecordConsent(ctx(t), store.Consent{
			FanID: fan, Provider: providers.Spotify, AccountID: "acct-enqueue",
			Token:     store.Token{RefreshToken: "refresh", AuthorizedAt: time.Now()},
			ReleaseID: r.ID, Actions: []providers.Action{providers.ActionSave}, ConsentedAt: time.Now(),
			ConsentVersion: "v1", FanZone: "UTC", DueAt: r.ReleaseAt, Enqueue: enqueue,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := record(uuid.Nil, true)
	if !first.FanCreated || first.Presave.Status != store.PresaveEnqueued || first.Presave.EnqueuedAt == nil {
		t.Fatalf("first consent: created=%v status=%s enqueued_at=%v", first.FanCreated, first.Presave.Status, first.Presave.EnqueuedAt)
	}
	again := record(first.FanID, false)
	if again.FanCreated || again.FanID != first.FanID || again.Presave.Generation != 2 ||
		again.Presave.Status != store.PresavePending || again.Presave.EnqueuedAt != nil {
		t.Fatalf("repeated consent: %+v", again)
	}
	if _, err := b.Store.Pool().Exec(ctx(t), `UPDATE presaves SET status = 'done', completed_at = now() WHERE id = $1`, first.Presave.ID); err != nil {
		t.Fatal(err)
	}
	done := record(first.FanID, true)
	if done.Presave.Status != store.PresaveDone || done.Presave.EnqueuedAt != nil {
		t.Fatalf("consent to a finished pre-save: status=%s enqueued_at=%v", done.Presave.Status, done.Presave.EnqueuedAt)
	}
}

// Consuming a state returns its release as it is now, and only once.
func TestConsumeOAuthStateRelease(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	r := release(t, b.Store, "consume-release")
	if _, err := b.Store.CancelRelease(ctx(t), r.ID); err != nil {
		t.Fatal(err)
	}
	in := store.OAuthState{
		Binding:  "binding-nonce",
		Provider: providers.YouTube, ReleaseID: r.ID, Verifier: "v", Actions: []providers.Action{providers.ActionLike},
		FanZone: "UTC", ConsentVersion: "v1", ExpiresAt: time.Now().Add(time.Minute),
	}
	if err := b.Store.CreateOAuthState(ctx(t), "s", in); err != nil {
		t.Fatal(err)
	}
	st, got, err := b.Store.ConsumeOAuthStateRelease(ctx(t), "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Verifier != "v" || st.ReleaseID != r.ID || got.ID != r.ID || got.Slug != r.Slug ||
		got.Status != store.ReleaseCancelled || !got.ReleaseAt.Equal(r.ReleaseAt) {
		t.Fatalf("consumed %+v with release %+v", st, got)
	}
	if _, _, err := b.Store.ConsumeOAuthStateRelease(ctx(t), "s", time.Now()); err == nil {
		t.Fatal("a state was consumed twice")
	}
}

// A statement that fails among the consent's writes rolls back all of
// them (the transaction is pipelined: BEGIN with the reads, COMMIT with
// the writes), and the connection is clean for whoever uses it next.
func TestRecordConsentRollsBackWhenAWriteFails(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	r := release(t, b.Store, "consent-rollback")
	first := consent(t, b.Store, r, providers.Spotify, "acct-first", "refresh-first", uuid.Nil)
	count := func(table string) int {
		t.Helper()
		var n int
		if err := b.Store.Pool().QueryRow(ctx(t), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	tables := []string{"fans", "fan_accounts", "provider_tokens", "presaves", "fan_sessions"}
	before := map[string]int{}
	for _, tb := range tables {
		before[tb] = count(tb)
	}
	// The new fan's self-service token collides with the first fan's: the
	// last write (fan_sessions) fails after fans, fan_accounts,
	// provider_tokens and presaves were written in the same transaction.
	// Every connection of the pool is tried, so a connection left inside
	// the transaction would show up in the consents that follow.
	for i := range storetest.TestPoolConns + 1 {
		_, err := b.Store.RecordConsent(ctx(t), store.Consent{
			Provider: providers.YouTube, AccountID: fmt.Sprintf("acct-second-%d", i),
			Token:     store.Token{RefreshToken: "refresh-second", AuthorizedAt: time.Now()},
			ReleaseID: r.ID, Actions: []providers.Action{providers.ActionLike}, ConsentedAt: time.Now(),
			ConsentVersion: "v1", FanZone: "UTC", DueAt: r.ReleaseAt,
		}, func() (string, error) { return first.FanToken, nil })
		if err == nil {
			t.Fatal("a consent whose fan token collides was recorded")
		}
	}
	for _, tb := range tables {
		if n := count(tb); n != before[tb] {
			t.Errorf("%s: %d rows after the failed consents, want %d (nothing of them kept)", tb, n, before[tb])
		}
	}
	// The pool's connections are usable: a good consent goes through.
	c := consent(t, b.Store, r, providers.YouTube, "acct-third", "refresh-third", uuid.Nil)
	if !c.FanCreated || c.Presave.ID == uuid.Nil {
		t.Errorf("consent after the failures: %+v", c)
	}
}
