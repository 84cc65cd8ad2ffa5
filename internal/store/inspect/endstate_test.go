package inspect_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
	"github.com/presave/presave/internal/store/storetest"
)

// TestEndStateReads: the tally groups by provider, status and reason; the
// action times come from the recorded results, not from started_at.
func TestEndStateReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := storetest.New(t)
	pool := b.Store.Pool()
	rel := uuid.New()
	due := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	if _, err := pool.Exec(ctx, `INSERT INTO releases (id, slug, title, artist, timing, release_at) VALUES ($1, 'r', 't', 'a', 'fixed', $2)`, rel, due); err != nil {
		t.Fatal(err)
	}
	insert := func(provider, status, lastErr, results string) uuid.UUID {
		t.Helper()
		fan := uuid.New()
		if _, err := pool.Exec(ctx, `INSERT INTO fans (id) VALUES ($1)`, fan); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO presaves (id, fan_id, release_id, provider, actions, consented_at, consent_version, fan_zone, due_at, status, last_error, results)
			VALUES ($1, $2, $3, $4, '{save}', now(), 'v', 'UTC', $5, $6, NULLIF($7, ''), $8::jsonb)`,
			uuid.New(), fan, rel, provider, due, status, lastErr, results); err != nil {
			t.Fatal(err)
		}
		return fan
	}
	at := func(d time.Duration) string { return due.Add(d).Format(time.RFC3339Nano) }
	doneFan := insert("spotify", "done", "", `{"save":{"outcome":"ok","at":"`+at(time.Second)+`"},"follow":{"outcome":"ok","at":"`+at(3*time.Second)+`"}}`)
	insert("spotify", "done", "", `{"save":{"outcome":"already","at":"`+at(2*time.Second)+`"}}`)
	insert("youtube", "failed", "reconnect_required", `{"like":{"outcome":"failed","reason":"reconnect_required","at":"`+at(-5*time.Second)+`"}}`)
	pendingFan := insert("youtube", "pending", "", `{}`)

	tally, err := inspect.TallyPresaves(ctx, b.Store, rel)
	if err != nil {
		t.Fatal(err)
	}
	want := map[inspect.PresaveTally]bool{
		{Provider: "spotify", Status: store.PresaveDone, N: 2}:                                 true,
		{Provider: "youtube", Status: store.PresaveFailed, Reason: "reconnect_required", N: 1}: true,
		{Provider: "youtube", Status: store.PresavePending, N: 1}:                              true,
	}
	if len(tally) != len(want) {
		t.Fatalf("tally = %+v", tally)
	}
	for _, tl := range tally {
		if !want[tl] {
			t.Fatalf("unexpected tally row %+v in %+v", tl, tally)
		}
	}
	if all, err := inspect.TallyPresaves(ctx, b.Store); err != nil || len(all) != 3 {
		t.Fatalf("tally of all releases = %+v, %v", all, err)
	}

	times, err := inspect.PresaveActionTimes(ctx, b.Store, rel)
	if err != nil {
		t.Fatal(err)
	}
	if times.Presaves != 3 || times.Actions != 4 || times.Early != 1 || !times.LastAction.Equal(due.Add(3*time.Second)) ||
		times.Max != 2*time.Second || !times.FirstDue.Equal(due) {
		t.Fatalf("times = %+v", times)
	}

	if _, err := pool.Exec(ctx, `INSERT INTO token_revocations (id, provider, key_id, token_sealed, reason) VALUES ($1, 'youtube', 'k', '\x00', 'x')`, uuid.New()); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []struct {
		fan      uuid.UUID
		provider string
	}{{doneFan, "spotify"}, {pendingFan, "youtube"}} {
		if _, err := pool.Exec(ctx, `INSERT INTO provider_tokens (fan_id, provider, key_id, refresh_sealed, authorized_at) VALUES ($1, $2, 'k', '\x00', now())`, tok.fan, tok.provider); err != nil {
			t.Fatal(err)
		}
	}
	sec, err := inspect.CountSecrets(ctx, b.Store)
	if err != nil || sec != (inspect.Secrets{Tokens: 2, Unneeded: 1, Revocations: 1}) {
		t.Fatalf("secrets = %+v, %v", sec, err)
	}
}
