package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// TestUnreadableTokenFailsAtOnce: a sealed grant that does not
// authenticate (another fan's ciphertext copied onto the row, one byte
// flipped, a Spotify ciphertext on a YouTube row) never opens, so its
// pre-save fails at the first attempt with token_unreadable and the row
// is purged; the fan whose ciphertext was copied is untouched. A grant
// sealed under a key the ring lacks may yet open (the operator restores
// the key), so it is retried, and when the retries are spent the
// pre-save fails too instead of staying open with an archived task.
func TestUnreadableTokenFailsAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"PRESAVE_MAX_RETRY": "2", "RETRY_BASE_DELAY": "50ms", "RETRY_MAX_DELAY": "200ms"})
	rel := b.newRelease("unreadable", time.Now().Add(3*time.Second))
	fans := b.consentMany(rel, "tamper", 5, providers.Spotify, providers.YouTube)
	by := map[string]fan{}
	for _, f := range fans {
		by[f.user+"/"+string(f.provider)] = f
	}
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if tag, err := b.st.Pool().Exec(ctx, sql, args...); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("%s: %v (%d rows)", sql, err, tag.RowsAffected())
		}
	}
	source, copied := by["tamper-0/spotify"], by["tamper-1/spotify"]
	flipped, moved, unknownKey := by["tamper-2/youtube"], by["tamper-3/youtube"], by["tamper-4/spotify"]
	// Fan 0's ciphertext onto fan 1's row.
	exec(`UPDATE provider_tokens t SET refresh_sealed = s.refresh_sealed, access_sealed = s.access_sealed, key_id = s.key_id
		FROM provider_tokens s WHERE s.fan_id = $1 AND s.provider = 'spotify' AND t.fan_id = $2 AND t.provider = 'spotify'`,
		source.presave.FanID, copied.presave.FanID)
	// One byte of fan 2's ciphertext flipped.
	exec(`UPDATE provider_tokens SET refresh_sealed = set_byte(refresh_sealed, 20, get_byte(refresh_sealed, 20) # 1)
		WHERE fan_id = $1 AND provider = 'youtube'`, flipped.presave.FanID)
	// User 3's Spotify ciphertext onto their YouTube row.
	exec(`UPDATE provider_tokens t SET refresh_sealed = s.refresh_sealed, access_sealed = s.access_sealed
		FROM provider_tokens s WHERE s.fan_id = $1 AND s.provider = 'spotify' AND t.fan_id = $2 AND t.provider = 'youtube'`,
		by["tamper-3/spotify"].presave.FanID, moved.presave.FanID)
	// Fan 4's grant names a key the ring does not hold (the key ID is
	// the header's third byte onwards).
	exec(`UPDATE provider_tokens SET refresh_sealed = set_byte(refresh_sealed, 2, ascii('Z'))
		WHERE fan_id = $1 AND provider = 'spotify'`, unknownKey.presave.FanID)
	b.startWorker()

	st := b.waitFinal(fans, time.Minute)
	want := map[uuid.UUID]string{copied.presave.ID: "token_unreadable", flipped.presave.ID: "token_unreadable",
		moved.presave.ID: "token_unreadable", unknownKey.presave.ID: "retries_exhausted"}
	for _, f := range fans {
		ps, err := b.st.Presave(ctx, f.presave.ID)
		if err != nil {
			t.Fatal(err)
		}
		reason, tampered := want[f.presave.ID]
		switch {
		case tampered && (ps.Status != store.PresaveFailed || ps.LastError != reason):
			t.Errorf("%s on %s: %s (%q), want failed with %s", f.user, f.provider, ps.Status, ps.LastError, reason)
		case tampered && reason == "token_unreadable" && ps.Attempts != 1:
			t.Errorf("%s on %s: %d attempts, want 1 (no retry can open it)", f.user, f.provider, ps.Attempts)
		case !tampered && ps.Status != store.PresaveDone:
			t.Errorf("%s on %s: %s (%q), want done (untouched)", f.user, f.provider, ps.Status, ps.LastError)
		}
		if tampered {
			for _, a := range ps.Actions {
				if r := ps.Results[a]; r.Outcome != "failed" || r.Reason != reason {
					t.Errorf("%s on %s: action %s result %+v, want failed with %s", f.user, f.provider, a, r, reason)
				}
			}
		}
	}
	b.assertTokensGone(fans)
	if n := b.counter("presave_token_unreadable_total"); n != 3 {
		t.Errorf("presave_token_unreadable_total = %v, want 3", n)
	}
	if got := b.fake.User(providers.Spotify, copied.user); len(got.Albums) != 0 {
		t.Errorf("the fan whose row held another's ciphertext got writes: %+v", got)
	}
	t.Logf("statuses %v", st)
}

// TestRefreshedTokensAreShared: one fan with pre-saves of two releases
// due together on each provider. The first attempt on each refreshes the
// expired access token; the second starts from the stored one: Spotify's
// rotated refresh token is stored at once (the old one no longer works),
// Google's access token, whose refresh token did not rotate, with the
// first pre-save's finish because the row outlives it. One refresh per
// provider.
func TestRefreshedTokensAreShared(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.fake.SetRotation(providers.Spotify, true)
	// Valid while the fan consents, expired (to x/oauth2, 10 s early) by
	// the release time, and the refreshed one valid for the second.
	b.fake.SetAccessTokenTTL(15 * time.Second)
	ctx := context.Background()
	due := time.Now().Add(6 * time.Second)
	var fans []fan
	for _, slug := range []string{"shared-1", "shared-2"} {
		rel := b.newRelease(slug, due)
		for _, p := range []providers.Name{providers.Spotify, providers.YouTube} {
			u, v := b.authURL(p, "sharer")
			ps, err := b.consent(ctx, p, u, v, rel)
			if err != nil {
				t.Fatal(err)
			}
			fans = append(fans, fan{user: "sharer", provider: p, presave: ps})
		}
	}
	spotifyBefore, googleBefore := b.fake.Calls("POST /api/token", 200), b.fake.Calls("POST /google/token", 200)
	b.startWorker()
	if st := b.waitFinal(fans, time.Minute); st[store.PresaveDone] != len(fans) {
		t.Fatalf("statuses %v, want all done", st)
	}
	if n := b.fake.Calls("POST /api/token", 200) - spotifyBefore; n != 1 {
		t.Errorf("%d Spotify refreshes, want 1", n)
	}
	if n := b.fake.Calls("POST /google/token", 200) - googleBefore; n != 1 {
		t.Errorf("%d Google refreshes, want 1", n)
	}
	b.assertTokensGone(fans)
}
