package store_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/seal"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
	"github.com/presave/presave/internal/store/storetest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func release(t *testing.T, st *store.Store, slug string) store.Release {
	t.Helper()
	r, err := st.CreateRelease(ctx(t), store.Release{
		Slug: slug, Title: "Album", Artist: "Artist", Timing: store.TimingFixed,
		ReleaseAt:       time.Now().Add(24 * time.Hour).Truncate(time.Second),
		SpotifyAlbumIDs: []string{"4aawyAB9vmqN3uQ7FjRGTy"}, YouTubeVideoID: "dQw4w9WgXcQ",
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func consent(t *testing.T, st *store.Store, r store.Release, p providers.Name, account, refresh string, fan uuid.UUID) store.Consented {
	t.Helper()
	ip := store.AnonymizeIP(netip.MustParseAddr("203.0.113.77"))
	due, _ := r.DueAt("Europe/Berlin")
	c, err := st.RecordConsent(ctx(t), store.Consent{
		FanID: fan, Provider: p, AccountID: account,
		Token: store.Token{RefreshToken: refresh, AccessToken: "access-" + refresh, Expiry: time.Now().Add(time.Hour),
			Scopes: []string{"a"}, AuthorizedAt: time.Now()},
		ReleaseID: r.ID, Actions: []providers.Action{providers.ActionSave}, ConsentedAt: time.Now(),
		ConsentVersion: "v1", FanZone: "Europe/Berlin", ClientIPPrefix: &ip, DueAt: due,
	}, func() (string, error) { return "fan-token-" + uuid.NewString(), nil })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- store.Migrate(ctx(t), b.MigrateURL)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent re-migrate: %v", err)
		}
	}
	var version int
	if err := b.Store.Pool().QueryRow(ctx(t), `SELECT version FROM schema_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 1 {
		t.Fatalf("schema version = %d", version)
	}
}

func TestMigrateFromZeroConcurrently(t *testing.T) {
	t.Parallel()
	b := storetest.New(t) // a migrated schema we do not use, for its cleanup
	_ = b
	// A second, empty schema migrated by several "binaries" at once.
	fresh := storetest.New(t)
	if _, err := fresh.Store.Pool().Exec(ctx(t), `DROP SCHEMA `+fresh.Schema+` CASCADE; CREATE SCHEMA `+fresh.Schema); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- store.Migrate(ctx(t), fresh.MigrateURL) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("migrate from zero: %v", err)
		}
	}
	var n int
	if err := fresh.Store.Pool().QueryRow(ctx(t), `SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'presaves'`, fresh.Schema).Scan(&n); err != nil || n != 1 {
		t.Fatalf("presaves table: n=%d err=%v", n, err)
	}
}

func TestTokenRoundTripAndUpdate(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	st := b.Store
	r := release(t, st, "round-trip")
	c := consent(t, st, r, providers.Spotify, "acct-1", "refresh-1", uuid.Nil)
	if !c.FanCreated || c.FanToken == "" {
		t.Fatalf("consent = %+v", c)
	}
	tok, err := st.Token(ctx(t), c.FanID, providers.Spotify)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "refresh-1" || tok.AccessToken != "access-refresh-1" || tok.KeyID != "test" {
		t.Fatalf("token = %+v", tok)
	}
	tok.RefreshToken, tok.AccessToken = "refresh-2", "access-2"
	if err := st.UpdateToken(ctx(t), tok); err != nil {
		t.Fatal(err)
	}
	tok2, err := st.Token(ctx(t), c.FanID, providers.Spotify)
	if err != nil || tok2.RefreshToken != "refresh-2" || tok2.AccessToken != "access-2" || tok2.RotatedAt == nil {
		t.Fatalf("after update: %+v, %v", tok2, err)
	}
	if _, err := st.Token(ctx(t), c.FanID, providers.YouTube); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing token: err = %v", err)
	}
}

func TestCiphertextMovedToAnotherFanFails(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	st := b.Store
	r := release(t, st, "moved")
	a := consent(t, st, r, providers.Spotify, "acct-a", "refresh-a", uuid.Nil)
	v := consent(t, st, r, providers.Spotify, "acct-b", "refresh-b", uuid.Nil)
	// An attacker with database access copies A's sealed token onto B's row.
	if _, err := st.Pool().Exec(ctx(t), `
		UPDATE provider_tokens SET refresh_sealed = (SELECT refresh_sealed FROM provider_tokens WHERE fan_id = $1)
		WHERE fan_id = $2`, a.FanID, v.FanID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Token(ctx(t), v.FanID, providers.Spotify); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("moved ciphertext opened: err = %v", err)
	}
	if _, err := st.Token(ctx(t), a.FanID, providers.Spotify); err != nil {
		t.Fatalf("original: %v", err)
	}
}

func TestRotateKeys(t *testing.T) {
	t.Parallel()
	b := storetest.New(t)
	r := release(t, b.Store, "rotate")
	var fans []uuid.UUID
	for i := range 7 {
		c := consent(t, b.Store, r, providers.YouTube, "acct-"+string(rune('a'+i)), "refresh-"+string(rune('a'+i)), uuid.Nil)
		fans = append(fans, c.FanID)
	}
	// One grant is waiting for revocation, sealed under the old key too.
	gone, err := b.Store.WithRevocable(revocable).Disconnect(ctx(t), fans[6], providers.YouTube)
	if err != nil || len(gone.Purges) != 1 || gone.Purges[0].RevocationID == uuid.Nil {
		t.Fatalf("disconnect: %+v %v", gone, err)
	}

	newKeys := storetest.RandomKeys("new") + "," + b.Keys
	ring, err := seal.ParseRing(newKeys)
	if err != nil {
		t.Fatal(err)
	}
	rotated := store.New(b.Store.Pool(), ring)
	total := 0
	for {
		n, err := rotated.RotateKeys(ctx(t), 3)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 7 {
		t.Fatalf("rotated %d values, want 7 (6 tokens + 1 revocation)", total)
	}
	// The old key can now be removed.
	onlyNew, _ := seal.ParseRing(strings.Split(newKeys, ",")[0])
	after := store.New(b.Store.Pool(), onlyNew)
	for i, f := range fans[:6] {
		tok, err := after.Token(ctx(t), f, providers.YouTube)
		if err != nil || tok.RefreshToken != "refresh-"+string(rune('a'+i)) || tok.KeyID != "new" {
			t.Fatalf("fan %d after rotation: %+v %v", i, tok, err)
		}
	}
	rev, err := after.Revocation(ctx(t), gone.Purges[0].RevocationID)
	if err != nil || rev.RefreshToken != "refresh-g" {
		t.Fatalf("revocation after rotation: %+v %v", rev, err)
	}
}

// TestDumpHoldsNoPlaintextToken seals known tokens, dumps the schema with
// pg_dump and greps the dump.
func TestDumpHoldsNoPlaintextToken(t *testing.T) {
	t.Parallel()
	pgDump, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Skip("pg_dump not installed")
	}
	b := storetest.New(t)
	r := release(t, b.Store, "dump")
	secrets := []string{"AQBsecretRefreshTokenSpotify0001", "1//0gSecretGoogleRefreshToken002"}
	consent(t, b.Store, r, providers.Spotify, "acct-s", secrets[0], uuid.Nil)
	consent(t, b.Store, r, providers.YouTube, "acct-y", secrets[1], uuid.Nil)
	out, err := exec.CommandContext(ctx(t), pgDump, "--schema="+b.Schema, "--data-only", b.DirectURL).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !bytes.Contains(out, []byte("acct-s")) {
		t.Fatal("dump does not contain the test data; the check would prove nothing")
	}
	for _, s := range secrets {
		for _, needle := range []string{s, "access-" + s} {
			if bytes.Contains(out, []byte(needle)) {
				t.Errorf("pg_dump contains plaintext token %q", needle)
			}
		}
	}
}

func TestConsentReusesFanAndToken(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store
	r1, r2 := release(t, st, "first"), release(t, st, "second")
	a := consent(t, st, r1, providers.Spotify, "acct-1", "refresh-1", uuid.Nil)
	b := consent(t, st, r2, providers.Spotify, "acct-1", "refresh-2", uuid.Nil)
	if b.FanCreated || b.FanID != a.FanID {
		t.Fatalf("second release made a new fan: %+v vs %+v", b, a)
	}
	var n int
	if err := st.Pool().QueryRow(ctx(t), `SELECT count(*) FROM provider_tokens WHERE fan_id = $1`, a.FanID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("token rows = %d, %v", n, err)
	}
	// Consenting again to the same release bumps the generation.
	again := consent(t, st, r1, providers.Spotify, "acct-1", "refresh-3", uuid.Nil)
	if again.Presave.ID != a.Presave.ID || again.Presave.Generation != a.Presave.Generation+1 {
		t.Fatalf("re-consent: %+v vs %+v", again.Presave, a.Presave)
	}
	if got, _ := st.FanByToken(ctx(t), again.FanToken); got != a.FanID {
		t.Fatalf("fan token resolves to %s", got)
	}
	if again.Presave.ClientIPPrefix == nil || again.Presave.ClientIPPrefix.String() != "203.0.113.0/24" {
		t.Fatalf("ip prefix = %v", again.Presave.ClientIPPrefix)
	}
	// A known fan connecting an account linked to someone else is refused.
	other := consent(t, st, r1, providers.YouTube, "acct-other", "r", uuid.Nil)
	_, err := st.RecordConsent(ctx(t), store.Consent{FanID: other.FanID, Provider: providers.Spotify, AccountID: "acct-1",
		Token: store.Token{RefreshToken: "x", AuthorizedAt: time.Now()}, ReleaseID: r1.ID,
		Actions: []providers.Action{providers.ActionSave}, ConsentedAt: time.Now(), ConsentVersion: "v1", FanZone: "UTC", DueAt: time.Now()}, nil)
	if !errors.Is(err, store.ErrAccountTaken) {
		t.Fatalf("err = %v, want ErrAccountTaken", err)
	}
}

func TestAnonymizeIP(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.77":          "203.0.113.0/24",
		"::ffff:203.0.113.77":   "203.0.113.0/24",
		"2001:db8:1234:5678::1": "2001:db8:1234::/48",
	} {
		if got := store.AnonymizeIP(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("AnonymizeIP(%s) = %s, want %s", in, got, want)
		}
	}
}

func revocable(p providers.Name) bool { return p == providers.YouTube }

func TestWithdrawDisconnectDelete(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store.WithRevocable(revocable)
	r1, r2 := release(t, st, "one"), release(t, st, "two")
	a1 := consent(t, st, r1, providers.YouTube, "acct", "refresh", uuid.Nil)
	a2 := consent(t, st, r2, providers.YouTube, "acct", "refresh", uuid.Nil)
	intruder := consent(t, st, r1, providers.Spotify, "intruder", "x", uuid.Nil)

	if _, err := st.WithdrawPresave(ctx(t), intruder.FanID, a1.Presave.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another fan withdrew: %v", err)
	}
	c, err := st.WithdrawPresave(ctx(t), a1.FanID, a1.Presave.ID)
	if err != nil || len(c.Presaves) != 1 || len(c.Purges) != 0 {
		t.Fatalf("withdraw one of two: %+v %v", c, err)
	}
	if ok, _ := inspect.HasToken(ctx(t), st, a1.FanID, providers.YouTube); !ok {
		t.Fatal("token purged while another pre-save needs it")
	}
	c, err = st.WithdrawPresave(ctx(t), a1.FanID, a2.Presave.ID)
	if err != nil || len(c.Purges) != 1 || c.Purges[0].RevocationID == uuid.Nil {
		t.Fatalf("withdraw last: %+v %v", c, err)
	}
	if ok, _ := inspect.HasToken(ctx(t), st, a1.FanID, providers.YouTube); ok {
		t.Fatal("token kept after the last pre-save was withdrawn")
	}
	rev, err := st.Revocation(ctx(t), c.Purges[0].RevocationID)
	if err != nil || rev.RefreshToken != "refresh" {
		t.Fatalf("revocation: %+v %v", rev, err)
	}

	// Disconnect deletes the token even with pre-saves pending.
	d := consent(t, st, r1, providers.Spotify, "acct-d", "rd", uuid.Nil)
	c, err = st.Disconnect(ctx(t), d.FanID, providers.Spotify)
	if err != nil || len(c.Presaves) != 1 || len(c.Purges) != 1 || c.Purges[0].RevocationID != uuid.Nil {
		t.Fatalf("disconnect: %+v %v", c, err)
	}
	p, _ := st.Presave(ctx(t), d.Presave.ID)
	if p.Status != store.PresaveCancelled {
		t.Fatalf("status after disconnect = %s", p.Status)
	}

	// Delete removes every row about the fan.
	c, err = st.DeleteFan(ctx(t), a1.FanID)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"fans WHERE id", "fan_accounts WHERE fan_id", "fan_sessions WHERE fan_id", "provider_tokens WHERE fan_id", "presaves WHERE fan_id"} {
		var n int
		if err := st.Pool().QueryRow(ctx(t), `SELECT count(*) FROM `+table+` = $1`, a1.FanID).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows left (%v)", table, n, err)
		}
	}
	if _, err := st.FanByToken(ctx(t), a1.FanToken); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old fan token still works: %v", err)
	}
	if _, err := st.DeleteFan(ctx(t), a1.FanID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestRescheduleAndCancelRelease(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store.WithRevocable(revocable)
	r := release(t, st, "moving")
	a := consent(t, st, r, providers.Spotify, "acct-a", "ra", uuid.Nil)
	r.ReleaseAt = r.ReleaseAt.Add(48 * time.Hour)
	got, moved, err := st.UpdateRelease(ctx(t), r)
	if err != nil || len(moved) != 1 || !moved[0].DueAt.Equal(got.ReleaseAt) || moved[0].Generation != a.Presave.Generation+1 {
		t.Fatalf("reschedule: %+v %v", moved, err)
	}
	// Switching to local timing computes midnight in the fan's zone.
	r.Timing, r.ReleaseAt = store.TimingLocal, time.Time{}
	r.ReleaseDate, r.DefaultZone = time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC), "UTC"
	_, moved, err = st.UpdateRelease(ctx(t), r)
	want := time.Date(2030, 3, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	if err != nil || len(moved) != 1 || !moved[0].DueAt.Equal(want) {
		t.Fatalf("local reschedule: %+v %v (want %s)", moved, err, want)
	}
	counts, _ := st.ReleaseCounts(ctx(t), r.ID)
	if counts[providers.Spotify]["pending"] != 1 {
		t.Fatalf("counts = %v", counts)
	}
	c, err := st.CancelRelease(ctx(t), r.ID)
	if err != nil || len(c.Presaves) != 1 || len(c.Purges) != 1 {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	if ok, _ := inspect.HasToken(ctx(t), st, a.FanID, providers.Spotify); ok {
		t.Fatal("token left after the release was cancelled")
	}
	if _, _, err := st.UpdateRelease(ctx(t), r); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("update of cancelled release: %v", err)
	}
}

// A consent computed from a release that was rescheduled or cancelled
// meanwhile is refused whole: no fan, token or pre-save is left behind
// with a stale due time.
func TestConsentRefusedWhenReleaseChanged(t *testing.T) {
	t.Parallel()
	st := storetest.New(t).Store.WithRevocable(revocable)
	r := release(t, st, "changing")
	stale := r.UpdatedAt
	r.ReleaseAt = r.ReleaseAt.Add(time.Hour)
	if _, _, err := st.UpdateRelease(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	c := store.Consent{Provider: providers.Spotify, AccountID: "late-fan",
		Token: store.Token{RefreshToken: "r", AuthorizedAt: time.Now()}, ReleaseID: r.ID,
		Actions: []providers.Action{providers.ActionSave}, ConsentedAt: time.Now(), ConsentVersion: "v1",
		FanZone: "UTC", DueAt: time.Now().Add(time.Hour), ReleaseUpdatedAt: stale}
	if _, err := st.RecordConsent(ctx(t), c, nil); !errors.Is(err, store.ErrReleaseChanged) {
		t.Fatalf("consent on a rescheduled release: err = %v, want ErrReleaseChanged", err)
	}
	if _, err := st.CancelRelease(ctx(t), r.ID); err != nil {
		t.Fatal(err)
	}
	c.ReleaseUpdatedAt = time.Time{}
	if _, err := st.RecordConsent(ctx(t), c, nil); !errors.Is(err, store.ErrReleaseChanged) {
		t.Fatalf("consent on a cancelled release: err = %v, want ErrReleaseChanged", err)
	}
	var n int
	if err := st.Pool().QueryRow(ctx(t), `SELECT (SELECT count(*) FROM fans) + (SELECT count(*) FROM provider_tokens) + (SELECT count(*) FROM presaves)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows left behind: %d (%v)", n, err)
	}
}
