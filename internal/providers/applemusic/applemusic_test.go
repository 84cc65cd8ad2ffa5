package applemusic_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/applemusic"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/providers/providerstest"
)

const (
	team = "TEAM123456"
	kid  = "KEY1234567"
)

// clock is the fake's (and nothing else's) time, which tests move
// forward: availability times.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.offset) }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

type bundle struct {
	fake  *fake.Server
	clock *clock
	p     *applemusic.Provider
	url   string
}

// setup starts the fake with a registered MusicKit key and a catalogue:
// album A1 (UPC 00602445790128, songs S1 and S2, every storefront),
// album GB1 (sold in gb only), album LATE (available in an hour).
func setup(t *testing.T) *bundle {
	t.Helper()
	c := &clock{}
	f := fake.New(fake.Options{Now: c.Now})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	p8, err := f.NewAppleKey(team, kid)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := applemusic.NewDevTokens(applemusic.DevTokenConfig{TeamID: team, KeyID: kid, PrivateKey: p8})
	if err != nil {
		t.Fatal(err)
	}
	p, err := applemusic.New(applemusic.Config{DevTokens: dev, APIURL: srv.URL, AuthorizeURL: "http://app.test/connect/applemusic/authorize"})
	if err != nil {
		t.Fatal(err)
	}
	f.SetAppleItem(fake.AppleItem{Type: "albums", ID: "A1", UPC: "00602445790128", Tracks: []string{"S1", "S2"}})
	f.SetAppleItem(fake.AppleItem{Type: "songs", ID: "S1", ISRC: "USUM72400001"})
	f.SetAppleItem(fake.AppleItem{Type: "songs", ID: "S2", ISRC: "USUM72400002"})
	f.SetAppleItem(fake.AppleItem{Type: "albums", ID: "GB1", Storefronts: []string{"gb"}})
	f.SetAppleItem(fake.AppleItem{Type: "albums", ID: "LATE", AvailableAt: c.Now().Add(time.Hour)})
	return &bundle{fake: f, clock: c, p: p, url: srv.URL}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect plays the fan in MusicKit JS and hands the token to Exchange,
// as the API's endpoint does.
func (b *bundle) connect(t *testing.T, user, storefront string) (providers.Grant, providers.Client) {
	t.Helper()
	dev, err := b.p.DeveloperToken()
	if err != nil {
		t.Fatal(err)
	}
	mut, err := b.fake.MusicUserToken(dev, user, storefront)
	if err != nil {
		t.Fatal(err)
	}
	g, err := b.p.Exchange(ctxT(t), mut, "")
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return g, b.p.Client(ctxT(t), g.Token, nil)
}

func wantClass(t *testing.T, err error, class providers.Class, reason string) {
	t.Helper()
	pe, ok := providers.AsError(err)
	if !ok || pe.Class != class || pe.Reason != reason {
		t.Fatalf("error = %v, want class %s reason %q", err, class, reason)
	}
}

// Exchange reads the storefront with both tokens and keeps nothing but
// the token and the storefront: no account ID exists.
func TestExchange(t *testing.T) {
	b := setup(t)
	g, _ := b.connect(t, "fan-1", "gb")
	if g.Storefront != "gb" || g.AccountID != "" || g.Token.RefreshToken == "" || g.Token.AccessToken != "" {
		t.Fatalf("grant = %+v, want storefront gb, no account ID, the user token as the lasting secret only", g)
	}
	for _, bad := range []string{"", "has space", "line\nbreak", strings.Repeat("a", 5000)} {
		_, err := b.p.Exchange(ctxT(t), bad, "")
		wantClass(t, err, providers.GrantInvalid, "user_token_malformed")
	}
	// A token MusicKit never issued: 403, the fan's token is the problem.
	_, err := b.p.Exchange(ctxT(t), "mut-unknown", "")
	wantClass(t, err, providers.GrantInvalid, "user_token_rejected")
}

func TestAuthorizeURLIsOurPage(t *testing.T) {
	b := setup(t)
	if got := b.p.AuthCodeURL("st/1", "", nil); got != "http://app.test/connect/applemusic/authorize?state=st%2F1" {
		t.Fatalf("AuthCodeURL = %q", got)
	}
	if exp := b.p.GrantExpiry(time.Unix(0, 0)); !exp.Equal(time.Unix(0, 0).Add(applemusic.UserTokenLifetimeDefault)) {
		t.Fatalf("GrantExpiry = %v, want 180 days on", exp)
	}
	if err := b.p.Revoke(ctxT(t), "x"); err != providers.ErrRevokeUnsupported {
		t.Fatalf("Revoke = %v, want ErrRevokeUnsupported", err)
	}
}

// add_to_library checks, adds, reads back; once in the library it is
// already in effect and nothing is written again.
func TestAddToLibraryVerified(t *testing.T) {
	b := setup(t)
	_, c := b.connect(t, "fan-1", "us")
	tg := providers.Target{AlbumIDs: []string{"A1"}, Storefront: "us"}
	if in, err := c.InEffect(ctxT(t), providers.ActionAddToLibrary, tg); err != nil || in {
		t.Fatalf("InEffect before = %v, %v", in, err)
	}
	out, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, tg)
	if err != nil || out != providers.OutcomeOK {
		t.Fatalf("Perform = %v, %v", out, err)
	}
	if u := b.fake.User(providers.AppleMusic, "fan-1"); !slices.Equal(u.Albums, []string{"A1"}) {
		t.Fatalf("library albums = %v, want [A1]", u.Albums)
	}
	writes := b.fake.Calls("POST /v1/me/library", http.StatusAccepted)
	if out, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, tg); err != nil || out != providers.OutcomeAlready {
		t.Fatalf("second Perform = %v, %v, want already", out, err)
	}
	if n := b.fake.Calls("POST /v1/me/library", http.StatusAccepted); n != writes {
		t.Fatalf("second Perform wrote again (%d adds, want %d)", n, writes)
	}
	if in, err := c.InEffect(ctxT(t), providers.ActionAddToLibrary, tg); err != nil || !in {
		t.Fatalf("InEffect after = %v, %v", in, err)
	}
}

// Apple answers 202 even for IDs it ignored: the fan's storefront moved
// to gb, where A1's catalogue check in us passes but the add is
// ignored. Only the read back sees it, and the add fails as unverified.
func TestAddIgnoredIsNotVerified(t *testing.T) {
	b := setup(t)
	b.fake.SetAppleItem(fake.AppleItem{Type: "albums", ID: "US1", Storefronts: []string{"us"}})
	_, c := b.connect(t, "fan-gb", "gb")
	_, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, providers.Target{AlbumIDs: []string{"US1"}, Storefront: "us"})
	wantClass(t, err, providers.Retryable, "add_not_verified")
	if n := b.fake.Calls("POST /v1/me/library", http.StatusAccepted); n != 1 {
		t.Fatalf("adds answered 202: %d, want 1 (the ignored one)", n)
	}
	if u := b.fake.User(providers.AppleMusic, "fan-gb"); len(u.Albums) != 0 {
		t.Fatalf("library = %v, want empty", u.Albums)
	}
}

// Songs are added when the release names no album.
func TestAddSongs(t *testing.T) {
	b := setup(t)
	_, c := b.connect(t, "fan-1", "us")
	out, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, providers.Target{TrackIDs: []string{"S1", "S2"}, Storefront: "us"})
	if err != nil || out != providers.OutcomeOK {
		t.Fatalf("Perform = %v, %v", out, err)
	}
	if u := b.fake.User(providers.AppleMusic, "fan-1"); !slices.Equal(u.Tracks, []string{"S1", "S2"}) || len(u.Albums) != 0 {
		t.Fatalf("library = %+v, want songs S1 S2 only", u)
	}
}

// Not in the fan's storefront, or not available yet: not live, nothing
// written; once available, the add goes through.
func TestNotLive(t *testing.T) {
	b := setup(t)
	_, c := b.connect(t, "fan-1", "us")
	for _, id := range []string{"GB1", "LATE", "NOSUCH"} {
		_, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, providers.Target{AlbumIDs: []string{id}, Storefront: "us"})
		wantClass(t, err, providers.NotLiveYet, "not_in_storefront")
	}
	_, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, providers.Target{Storefront: "us"})
	wantClass(t, err, providers.NotLiveYet, "not_in_storefront")
	if n := b.fake.Calls("POST /v1/me/library", http.StatusAccepted); n != 0 {
		t.Fatalf("%d adds sent for targets not live", n)
	}
	b.clock.Add(2 * time.Hour)
	if out, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, providers.Target{AlbumIDs: []string{"LATE"}, Storefront: "us"}); err != nil || out != providers.OutcomeOK {
		t.Fatalf("Perform once available = %v, %v", out, err)
	}
}

// The error classes: a revoked user token is the fan's (403 → grant
// invalid); a developer key Apple does not know is ours and must not
// cost any fan their grant (401 → retry); 429 waits (no wait named); 5xx retries; an
// account without a subscription fails for that fan only.
func TestErrorClasses(t *testing.T) {
	tg := providers.Target{AlbumIDs: []string{"A1"}, Storefront: "us"}
	t.Run("revoked", func(t *testing.T) {
		b := setup(t)
		_, c := b.connect(t, "fan-1", "us")
		if n := b.fake.RevokeAppleUser("fan-1"); n != 1 {
			t.Fatalf("revoked %d tokens", n)
		}
		_, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, tg)
		wantClass(t, err, providers.GrantInvalid, "user_token_rejected")
	})
	t.Run("developer key unknown", func(t *testing.T) {
		b := setup(t)
		g, _ := b.connect(t, "fan-1", "us")
		other, err := applemusic.NewDevTokens(applemusic.DevTokenConfig{TeamID: team, KeyID: "OTHERKEY99", PrivateKey: mustKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := applemusic.New(applemusic.Config{DevTokens: other, APIURL: b.url, AuthorizeURL: "http://app.test/a"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Client(ctxT(t), g.Token, nil).Perform(ctxT(t), providers.ActionAddToLibrary, tg)
		wantClass(t, err, providers.Retryable, "developer_token_rejected")
		_, err = p.Exchange(ctxT(t), g.Token.RefreshToken, "")
		wantClass(t, err, providers.Retryable, "developer_token_rejected")
	})
	t.Run("rate limited", func(t *testing.T) {
		b := setup(t)
		_, c := b.connect(t, "fan-1", "us")
		b.fake.SetRateLimit(providers.AppleMusic, 0.001, 1)
		_, _ = c.Perform(ctxT(t), providers.ActionAddToLibrary, tg) // spends the burst
		_, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, tg)
		wantClass(t, err, providers.RateLimited, "rate_limited")
		if pe, _ := providers.AsError(err); pe.RetryAfter != 0 {
			t.Fatalf("RetryAfter = %v, want none (Apple sends none: the workers' shared backoff applies)", pe.RetryAfter)
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		b := setup(t)
		_, c := b.connect(t, "fan-1", "us")
		b.fake.SetErrorRate(providers.AppleMusic, 1)
		_, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, tg)
		if providers.ClassOf(err) != providers.Retryable {
			t.Fatalf("error = %v, want retryable", err)
		}
	})
	t.Run("no subscription", func(t *testing.T) {
		b := setup(t)
		_, c := b.connect(t, "fan-nosub", "us")
		b.fake.SetAppleNoSubscription("fan-nosub")
		_, err := c.Perform(ctxT(t), providers.ActionAddToLibrary, tg)
		wantClass(t, err, providers.Permanent, "no_subscription")
		if providers.IsTargetError(err) {
			t.Fatal("no subscription counted against the release")
		}
		// Library reads answer 401 for such an account, with a developer
		// token that works: the fan's problem.
		_, err = c.OwnPlaylist(ctxT(t), providers.Target{MyPlaylist: providers.MyPlaylist{Name: "N", Key: "k"}})
		wantClass(t, err, providers.GrantInvalid, "user_unauthorized")
	})
}

// add_to_my_playlist creates one playlist marked for the release (found
// again by its marker, even past the first page), adds the album's songs
// once, and never twice.
func TestMyPlaylist(t *testing.T) {
	b := setup(t)
	g, c := b.connect(t, "fan-1", "us")
	// 120 playlists of the fan's own first: the marked one is on page 2.
	for i := range 120 {
		createPlaylist(t, b, g.Token, fmt.Sprintf("mine %d", i))
	}
	tg := providers.Target{AlbumIDs: []string{"A1"}, Storefront: "us",
		MyPlaylist: providers.MyPlaylist{Name: "New Album", Description: "Out now", Key: "rel-1"}}
	out, tg2, err := providerstest.Perform(ctxT(t), c, providers.ActionAddToMyPlaylist, tg)
	if err != nil || out != providers.OutcomeOK {
		t.Fatalf("Perform = %v, %v", out, err)
	}
	again, err := c.OwnPlaylist(ctxT(t), tg)
	if err != nil || again != tg2.MyPlaylist.ID {
		t.Fatalf("OwnPlaylist again = %q, %v; want %q", again, err, tg2.MyPlaylist.ID)
	}
	if out, err := c.Perform(ctxT(t), providers.ActionAddToMyPlaylist, tg2); err != nil || out != providers.OutcomeAlready {
		t.Fatalf("second Perform = %v, %v", out, err)
	}
	if items := b.fake.PlaylistItems(providers.AppleMusic, tg2.MyPlaylist.ID); !slices.Equal(items, []string{"S1", "S2"}) {
		t.Fatalf("playlist = %v, want S1 S2 once", items)
	}
	u := b.fake.User(providers.AppleMusic, "fan-1")
	if len(u.Playlists) != 121 || !strings.HasSuffix(u.Playlists[120].Description, providers.PlaylistMarker("rel-1")) {
		t.Fatalf("%d playlists, want 121 with the marked one last", len(u.Playlists))
	}
}

// Songs not in the fan's storefront are left out by Apple without an
// error; the read back fails the add.
func TestPlaylistAddIgnored(t *testing.T) {
	b := setup(t)
	b.fake.SetAppleItem(fake.AppleItem{Type: "songs", ID: "US-S", Storefronts: []string{"us"}})
	_, c := b.connect(t, "fan-gb", "gb")
	tg := providers.Target{TrackIDs: []string{"US-S"}, Storefront: "us", MyPlaylist: providers.MyPlaylist{Name: "N", Key: "k"}}
	_, _, err := providerstest.Perform(ctxT(t), c, providers.ActionAddToMyPlaylist, tg)
	wantClass(t, err, providers.Retryable, "add_not_verified")
}

// Resolution is per storefront, with the developer token alone.
func TestResolveIn(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		sf   string
		kind providers.CodeKind
		code string
		want string
	}{
		{"us", providers.CodeUPC, "00602445790128", "A1"},
		{"jp", providers.CodeUPC, "00602445790128", "A1"},
		{"us", providers.CodeISRC, "USUM72400002", "S2"},
		{"us", providers.CodeUPC, "99999999999999", ""},
	} {
		got, err := b.p.ResolveIn(ctxT(t), tc.sf, tc.kind, tc.code)
		if err != nil || got != tc.want {
			t.Errorf("ResolveIn(%s, %s %s) = %q, %v; want %q", tc.sf, tc.kind, tc.code, got, err, tc.want)
		}
	}
	if _, err := b.p.ResolveIn(ctxT(t), "../x", providers.CodeUPC, "1"); providers.ClassOf(err) != providers.Permanent {
		t.Fatalf("bad storefront: %v", err)
	}
}

// Calls is what the limiter charges: never less than Perform sends.
func TestCallsCoverRequests(t *testing.T) {
	b := setup(t)
	_, c := b.connect(t, "fan-1", "us")
	for _, a := range []providers.Action{providers.ActionAddToLibrary, providers.ActionAddToMyPlaylist} {
		tg := providers.Target{AlbumIDs: []string{"A1"}, Storefront: "us", MyPlaylist: providers.MyPlaylist{Name: "N", Key: "k"}}
		if a == providers.ActionAddToMyPlaylist {
			id, err := c.OwnPlaylist(ctxT(t), tg)
			if err != nil {
				t.Fatal(err)
			}
			tg.MyPlaylist.ID = id
		}
		before := total(b.fake.CallCounts())
		if _, err := c.Perform(ctxT(t), a, tg); err != nil {
			t.Fatal(err)
		}
		if sent := total(b.fake.CallCounts()) - before; sent > b.p.Calls(a, tg) {
			t.Errorf("%s sent %d requests, Calls says %d", a, sent, b.p.Calls(a, tg))
		}
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func createPlaylist(t *testing.T, b *bundle, tok *oauth2.Token, name string) {
	t.Helper()
	dev, _ := b.p.DeveloperToken()
	req, _ := http.NewRequest(http.MethodPost, b.url+"/v1/me/library/playlists", strings.NewReader(`{"attributes":{"name":"`+name+`"}}`))
	req.Header.Set("Authorization", "Bearer "+dev)
	req.Header.Set("Music-User-Token", tok.RefreshToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create playlist: HTTP %d", resp.StatusCode)
	}
}

func mustKey(t *testing.T) []byte {
	t.Helper()
	p8, _, err := fake.GenerateAppleKey()
	if err != nil {
		t.Fatal(err)
	}
	return p8
}

// A whole pre-save (album to the library, its songs to a new playlist)
// costs seven requests: the library check also yields the album's songs,
// and a playlist just created is not read before the add.
func TestWholePresaveRequests(t *testing.T) {
	b := setup(t)
	_, c := b.connect(t, "fan-1", "us")
	tg := providers.Target{AlbumIDs: []string{"A1"}, Storefront: "us", MyPlaylist: providers.MyPlaylist{Name: "N", Key: "k"}}
	before := total(b.fake.CallCounts())
	for _, a := range []providers.Action{providers.ActionAddToLibrary, providers.ActionAddToMyPlaylist} {
		var err error
		if _, tg, err = providerstest.Perform(ctxT(t), c, a, tg); err != nil {
			t.Fatal(err)
		}
	}
	if n := total(b.fake.CallCounts()) - before; n != 7 {
		t.Errorf("a whole pre-save sent %d requests, want 7: %v", n, b.fake.CallCounts())
	}
	if items := b.fake.PlaylistItems(providers.AppleMusic, tg.MyPlaylist.ID); !slices.Equal(items, []string{"S1", "S2"}) {
		t.Fatalf("playlist = %v", items)
	}
}

// A playlist the fan deleted fails the add as the fan's doing, not the
// release's.
func TestPlaylistGone(t *testing.T) {
	b := setup(t)
	g, c := b.connect(t, "fan-1", "us")
	tg := providers.Target{AlbumIDs: []string{"A1"}, Storefront: "us", MyPlaylist: providers.MyPlaylist{Name: "N", Key: "k"}}
	id, err := c.OwnPlaylist(ctxT(t), tg)
	if err != nil {
		t.Fatal(err)
	}
	b.fake.DeletePlaylist(providers.AppleMusic, id)
	tg.MyPlaylist.ID = id
	// A later attempt: a new client, which did not create it.
	_, err = b.p.Client(ctxT(t), g.Token, nil).Perform(ctxT(t), providers.ActionAddToMyPlaylist, tg)
	wantClass(t, err, providers.Permanent, "playlist_gone")
	if providers.IsTargetError(err) {
		t.Fatal("a deleted playlist counted against the release")
	}
}
