package jobs_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/store"
)

// TestAppleMusicByCodesPerStorefront: a release names its Apple Music
// album by UPC only, and the album has one catalogue ID in the us
// storefront and another in gb (as a label's territories may). Fans of
// both storefronts get their own storefront's album and its songs; the
// UPC is looked up once per storefront, never per fan; every token goes
// (and none is revoked: Apple has no revoke).
func TestAppleMusicByCodesPerStorefront(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	const upc, usAlbum, gbAlbum = "00602445790999", "1700000001", "1700000002"
	b.fake.SetAppleItem(fake.AppleItem{Type: "albums", ID: usAlbum, UPC: upc, Storefronts: []string{"us"}, Tracks: []string{amSong1}})
	b.fake.SetAppleItem(fake.AppleItem{Type: "albums", ID: gbAlbum, UPC: upc, Storefronts: []string{"gb"}, Tracks: []string{amSong2}})
	rel := b.newRelease("apple-codes", time.Now().Add(3*time.Second))
	rel.AppleMusicAlbumIDs, rel.AppleMusicByCodes, rel.SpotifyUPC = nil, true, upc
	rel, _, err := b.st.UpdateRelease(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	var fans []fan
	storefront := map[string]string{}
	for i := range 12 {
		user, sf := fmt.Sprintf("amc-%d", i), []string{"us", "gb"}[i%2]
		ps, err := b.consent(ctx, providers.AppleMusic, user+"@"+sf, "", rel)
		if err != nil {
			t.Fatal(err)
		}
		fans, storefront[user] = append(fans, fan{user: user, provider: providers.AppleMusic, presave: ps}), sf
	}
	b.startWorker()
	if st := b.waitFinal(fans, time.Minute); st[store.PresaveDone] != len(fans) {
		t.Fatalf("statuses %v, want all done", st)
	}
	for _, f := range fans {
		album, song := usAlbum, amSong1
		if storefront[f.user] == "gb" {
			album, song = gbAlbum, amSong2
		}
		u := b.fake.User(providers.AppleMusic, f.user)
		if !slices.Equal(u.Albums, []string{album}) || len(u.Playlists) != 1 || !slices.Equal(u.Playlists[0].Items, []string{song}) {
			t.Errorf("%s (%s): library %v, playlists %+v; want %s and a playlist of %s", f.user, storefront[f.user], u.Albums, u.Playlists, album, song)
		}
	}
	b.assertTokensGone(fans)
	if n := len(b.fake.Revoked()); n != 0 {
		t.Errorf("%d revokes: Apple has no revoke endpoint", n)
	}
	// Per fan: the library check and its read back. Beyond those, one
	// lookup per storefront: 12 × 2 + 2.
	if got := b.fake.Calls("GET /v1/catalog/{sf}/{type}", http.StatusOK); got != 2*len(fans)+2 {
		t.Errorf("%d catalogue reads, want %d: the UPC looked up once per storefront, never per fan", got, 2*len(fans)+2)
	}
	found, err := b.st.StorefrontCodes(ctx, rel.ID, "gb")
	if err != nil || found["upc:"+upc].ID != gbAlbum {
		t.Errorf("gb's resolution recorded as %+v (%v), want %s", found, err, gbAlbum)
	}
}

// TestAppleMusicRevokedAndNotInStorefront: a fan who removed the app at
// Apple (403) fails with reconnect_required and loses the token at once;
// a fan whose storefront does not sell the album yet waits as not live,
// and is done once it does.
func TestAppleMusicRevokedAndNotInStorefront(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	const late = "1700000003"
	b.fake.SetAppleItem(fake.AppleItem{Type: "albums", ID: late, Tracks: []string{amSong1}, AvailableAt: time.Now().Add(8 * time.Second)})
	rel := b.newRelease("apple-faults", time.Now().Add(3*time.Second))
	rel.AppleMusicAlbumIDs = []string{late}
	rel, _, err := b.st.UpdateRelease(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	fans := b.consentMany(rel, "amf", 2, providers.AppleMusic)
	b.fake.RevokeAppleUser("amf-0")
	b.startWorker()
	b.waitFinal(fans, time.Minute)
	for _, f := range fans {
		ps, err := b.st.Presave(ctx, f.presave.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch f.user {
		case "amf-0":
			if ps.Status != store.PresaveFailed || ps.LastError != "reconnect_required" {
				t.Errorf("revoked fan: %s (%q), want failed (reconnect_required)", ps.Status, ps.LastError)
			}
		case "amf-1":
			if ps.Status != store.PresaveDone || ps.Attempts < 2 {
				t.Errorf("late album: %s after %d attempts, want done after waiting", ps.Status, ps.Attempts)
			}
			if u := b.fake.User(providers.AppleMusic, f.user); !slices.Equal(u.Albums, []string{late}) {
				t.Errorf("late album: library %v", u.Albums)
			}
		}
	}
	b.assertTokensGone(fans)
}

// TestAppleMusicWrongAlbumPausesTheCanary: an album ID Apple's catalogue
// does not have (a typo) pauses the release on Apple Music at its
// canary, as on Spotify: nobody fails, every token is kept, the fans
// behind the canary never run. Fixed and resumed, everyone is done once.
func TestAppleMusicWrongAlbumPausesTheCanary(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"CANARY_SIZE": "4"})
	ctx := context.Background()
	rel := b.newRelease("apple-wrong", time.Now().Add(2*time.Second))
	rel.AppleMusicAlbumIDs = []string{"1799999999"}
	rel, _, err := b.st.UpdateRelease(ctx, rel)
	if err != nil {
		t.Fatal(err)
	}
	fans := b.consentMany(rel, "amw", 12, providers.AppleMusic)
	b.startWorker()
	g := b.waitPaused(rel, providers.AppleMusic, time.Minute)
	if g.Pause.Cause != store.PauseCanary || g.Pause.Action != providers.ActionAddToLibrary || g.Pause.Error != "not_in_storefront" {
		t.Errorf("pause = %+v, want the canary's add_to_library, not_in_storefront", *g.Pause)
	}
	if st := b.statusesOf(rel, providers.AppleMusic); st["failed"] != 0 || st["partial"] != 0 || st["done"] != 0 {
		t.Errorf("statuses %v while paused: nobody may fail or finish", st)
	}
	if kept := b.tokensKept(fans); kept != len(fans) {
		t.Errorf("%d of %d tokens kept while paused", kept, len(fans))
	}
	if n := b.fake.Calls("POST /v1/me/library", http.StatusAccepted); n != 0 {
		t.Errorf("%d library adds sent for an album the storefront does not have", n)
	}
	rel.AppleMusicAlbumIDs = []string{amAlbum}
	if _, _, err := b.st.UpdateRelease(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.st.OpenGuard(ctx, rel.ID, providers.AppleMusic, ""); err != nil {
		t.Fatal(err)
	}
	if st := b.waitFinal(fans, time.Minute); st[store.PresaveDone] != len(fans) {
		t.Fatalf("statuses %v after the fix, want all done", st)
	}
	b.assertExactlyOnce(fans)
	b.assertTokensGone(fans)
}
