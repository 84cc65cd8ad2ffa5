package spotify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/providers/providerstest"
	"github.com/presave/presave/internal/providers/spotify"
)

const clientID = "presave-spotify"

type env struct {
	fake *fake.Server
	p    *spotify.Provider
	user string
	tok  *oauth2.Token
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newEnv starts a fake, connects a fan through the full OAuth flow with
// the given actions' scopes, and returns the grant's token.
func newEnv(t *testing.T, mode string, actions ...providers.Action) *env {
	t.Helper()
	f := fake.New(fake.Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	u := fake.URLs(srv.URL)
	p := spotify.New(spotify.Config{
		ClientID: clientID, ClientSecret: "secret", RedirectURL: "https://app.test/callback",
		AccountsURL: u.SpotifyAccountsURL, APIURL: u.SpotifyAPIURL, Mode: mode,
	})
	if len(actions) == 0 {
		actions = allActions
	}
	e := &env{fake: f, p: p, user: "fan-" + strings.ReplaceAll(t.Name(), "/", "-")}
	e.tok = e.connect(t, p.Scopes(actions))
	return e
}

func (e *env) connect(t *testing.T, scopes []string) *oauth2.Token {
	t.Helper()
	ctx := ctxT(t)
	verifier := oauth2.GenerateVerifier()
	q, err := fake.Consent(ctx, fake.WithUser(e.p.AuthCodeURL("state-1", verifier, scopes), e.user))
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("state") != "state-1" || q.Get("code") == "" {
		t.Fatalf("callback query = %v, want state and code", q)
	}
	g, err := e.p.Exchange(ctx, q.Get("code"), verifier)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if g.AccountID != e.user {
		t.Fatalf("AccountID = %q, want %q", g.AccountID, e.user)
	}
	if g.Token.AccessToken == "" || g.Token.RefreshToken == "" {
		t.Fatal("grant lacks access or refresh token")
	}
	return g.Token
}

func (e *env) client(ctx context.Context, onRefresh func(*oauth2.Token)) providers.Client {
	return e.p.Client(ctx, e.tok, onRefresh)
}

var modes = []string{spotify.ModeLibrary, spotify.ModeLegacy}

var target = providers.Target{
	AlbumIDs:         []string{"album1"},
	TrackIDs:         []string{"track1", "track2"},
	ArtistIDs:        []string{"artist1", "artist2"},
	FollowPlaylistID: "artistplaylist",
	MyPlaylist:       providers.MyPlaylist{Name: "Night Drive: The Examples", Description: "Pre-saved.", Key: "release-1"},
}

// allActions are every action target offers.
var allActions = []providers.Action{providers.ActionSave, providers.ActionFollow, providers.ActionFollowPlaylist, providers.ActionAddToMyPlaylist}

// target is the package's target as the worker hands it to e's fan: with
// the fan's account ID.
func (e *env) target() providers.Target {
	t := target
	t.AccountID = e.user
	return t
}

func TestOAuth(t *testing.T) {
	e := newEnv(t, spotify.ModeLibrary)
	ctx := ctxT(t)

	authURL := e.p.AuthCodeURL("s", oauth2.GenerateVerifier(), e.p.Scopes([]providers.Action{providers.ActionSave}))
	for _, want := range []string{"code_challenge_method=S256", "code_challenge=", "scope=user-library-modify+user-library-read", "client_id=" + clientID} {
		if !strings.Contains(authURL, want) {
			t.Errorf("AuthCodeURL %q lacks %q", authURL, want)
		}
	}

	t.Run("generated user", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		q, err := fake.Consent(ctx, e.p.AuthCodeURL("s", v, []string{"user-library-read"}))
		if err != nil {
			t.Fatal(err)
		}
		g, err := e.p.Exchange(ctx, q.Get("code"), v)
		if err != nil || g.AccountID == "" || !slices.Equal(g.Scopes, []string{"user-library-read"}) {
			t.Fatalf("Exchange = %+v, %v; want an account ID and the scope", g.AccountID, err)
		}
	})
	t.Run("denied", func(t *testing.T) {
		q, err := fake.Consent(ctx, e.p.AuthCodeURL("s", oauth2.GenerateVerifier(), nil)+"&deny=1")
		if err != nil || q.Get("error") != "access_denied" || q.Get("code") != "" || q.Get("state") != "s" {
			t.Fatalf("deny callback = %v, %v", q, err)
		}
	})
	t.Run("wrong PKCE verifier", func(t *testing.T) {
		q, err := fake.Consent(ctx, e.p.AuthCodeURL("s", oauth2.GenerateVerifier(), nil))
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.p.Exchange(ctx, q.Get("code"), oauth2.GenerateVerifier())
		if providers.ClassOf(err) != providers.GrantInvalid {
			t.Fatalf("Exchange with wrong verifier: %v (class %v), want grant_invalid", err, providers.ClassOf(err))
		}
		if strings.Contains(err.Error(), q.Get("code")) {
			t.Fatal("error message carries the authorization code")
		}
		// The code was spent by the failed attempt.
		if _, err := e.p.Exchange(ctx, q.Get("code"), oauth2.GenerateVerifier()); err == nil {
			t.Fatal("code reused")
		}
	})
}

func TestActionsAndIdempotency(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, mode)
			ctx := ctxT(t)
			c := e.client(ctx, nil)
			tgt := e.target()

			if got := e.p.Actions(tgt); !slices.Equal(got, allActions) {
				t.Fatalf("Actions = %v, want %v", got, allActions)
			}
			for _, a := range e.p.Actions(tgt) {
				if a == providers.ActionAddToMyPlaylist {
					id, err := c.OwnPlaylist(ctx, tgt)
					if err != nil {
						t.Fatalf("OwnPlaylist: %v", err)
					}
					tgt.MyPlaylist.ID = id
				}
				in, err := c.InEffect(ctx, a, tgt)
				if err != nil || in {
					t.Fatalf("%s InEffect before = %v, %v; want false", a, in, err)
				}
				// An idempotent write is sent without a check, so its
				// outcome is ok every time; adding to the fan's playlist
				// checks, and finds it done the second time.
				again := providers.OutcomeOK
				if a == providers.ActionAddToMyPlaylist {
					again = providers.OutcomeAlready
				}
				for i, want := range []providers.Outcome{providers.OutcomeOK, again} {
					got, err := c.Perform(ctx, a, tgt)
					if err != nil || got != want {
						t.Fatalf("%s Perform #%d = %q, %v; want %q", a, i+1, got, err, want)
					}
				}
				if in, err := c.InEffect(ctx, a, tgt); err != nil || !in {
					t.Fatalf("%s InEffect after = %v, %v; want true", a, in, err)
				}
			}
			// A new client (a worker after a crash, one that never
			// recorded the playlist's ID) finds the same playlist and sees
			// it all done.
			for _, a := range e.p.Actions(tgt) {
				want := providers.OutcomeOK
				if a == providers.ActionAddToMyPlaylist {
					want = providers.OutcomeAlready
				}
				got, retried, err := providerstest.Perform(ctx, e.client(ctx, nil), a, e.target())
				if err != nil || got != want {
					t.Fatalf("%s retry = %q, %v; want %s", a, got, err, want)
				}
				if a == providers.ActionAddToMyPlaylist && retried.MyPlaylist.ID != tgt.MyPlaylist.ID {
					t.Fatalf("retry found playlist %q, want %q", retried.MyPlaylist.ID, tgt.MyPlaylist.ID)
				}
			}

			u := e.fake.User(providers.Spotify, e.user)
			if !slices.Equal(u.Albums, []string{"album1"}) || !slices.Equal(u.Tracks, []string{"track1", "track2"}) ||
				!slices.Equal(u.Artists, []string{"artist1", "artist2"}) || !slices.Equal(u.FollowedPlaylists, []string{"artistplaylist"}) {
				t.Fatalf("library = %+v", u)
			}
			if len(u.Playlists) != 1 {
				t.Fatalf("the fan owns %d playlists, want 1: %+v", len(u.Playlists), u.Playlists)
			}
			pl := u.Playlists[0]
			if pl.Name != target.MyPlaylist.Name || pl.Public || !strings.HasSuffix(pl.Description, "[presave:release-1]") ||
				!slices.Equal(pl.Items, []string{"spotify:track:track1", "spotify:track:track2"}) {
				t.Fatalf("the fan's playlist = %+v", pl)
			}
			if got := e.fake.PlaylistItems(providers.Spotify, "artistplaylist"); len(got) != 0 {
				t.Fatalf("the artist's playlist was changed: %v", got)
			}

			writes := map[string][]string{
				spotify.ModeLibrary: {"PUT /v1/me/library 200", "POST /v1/me/playlists 201", "POST /v1/playlists/{id}/items 201"},
				spotify.ModeLegacy: {"PUT /v1/me/albums 200", "PUT /v1/me/tracks 200", "PUT /v1/me/following 204",
					"PUT /v1/playlists/{id}/followers 200", "POST /v1/users/{user_id}/playlists 201", "POST /v1/playlists/{id}/tracks 201"},
			}[mode]
			st := e.fake.State()
			for _, k := range writes {
				// An idempotent write goes out on each of the three
				// Performs (two, then the retry): it is never checked, and
				// never duplicates. The playlist's are made once.
				want := 1
				switch k {
				case "PUT /v1/me/library 200":
					want = 3 * 3 // save, follow, follow the playlist
				case "PUT /v1/me/albums 200", "PUT /v1/me/tracks 200", "PUT /v1/me/following 204", "PUT /v1/playlists/{id}/followers 200":
					want = 3
				}
				if st.Calls[k] != want {
					t.Errorf("calls[%q] = %d, want %d (all: %v)", k, st.Calls[k], want, st.Calls)
				}
			}
			if mode == spotify.ModeLibrary {
				for k := range st.Calls {
					if strings.Contains(k, "/me/albums") || strings.Contains(k, "/me/tracks") || strings.Contains(k, "/me/following") ||
						strings.Contains(k, "/tracks ") || strings.Contains(k, "/users/") || strings.Contains(k, "/followers") {
						t.Errorf("library mode called legacy endpoint %q", k)
					}
				}
			}
		})
	}
}

// TestTheArtistsPlaylistIsNotTheFans: what the old playlist action did
// (add to the release's playlist, the artist's) Spotify refuses with 403,
// and the fake does too.
func TestTheArtistsPlaylistIsNotTheFans(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, mode)
			ctx := ctxT(t)
			tgt := e.target()
			tgt.MyPlaylist.ID = "artistplaylist" // someone else's
			_, err := e.client(ctx, nil).Perform(ctx, providers.ActionAddToMyPlaylist, tgt)
			pe, ok := providers.AsError(err)
			if !ok || pe.Status != 403 || pe.Class != providers.Permanent {
				t.Fatalf("adding to the artist's playlist: %v, want 403 permanent", err)
			}
		})
	}
}

func TestPlaylistAddsOnlyMissingAcrossPages(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, mode, providers.ActionAddToMyPlaylist)
			ctx := ctxT(t)
			c := e.client(ctx, nil)
			// 130 tracks: two POSTs (100 per call) and three pages to read back.
			var ids []string
			for i := range 130 {
				ids = append(ids, fmt.Sprintf("t%03d", i))
			}
			first := e.target()
			first.TrackIDs = ids[:120]
			got, first, err := providerstest.Perform(ctx, c, providers.ActionAddToMyPlaylist, first)
			if err != nil || got != providers.OutcomeOK {
				t.Fatalf("first Perform = %q, %v", got, err)
			}
			// The retry asks for more: only the 10 missing ones are added.
			all := first
			all.TrackIDs = ids
			if got, err := c.Perform(ctx, providers.ActionAddToMyPlaylist, all); err != nil || got != providers.OutcomeOK {
				t.Fatalf("second Perform = %q, %v", got, err)
			}
			if got, err := c.Perform(ctx, providers.ActionAddToMyPlaylist, all); err != nil || got != providers.OutcomeAlready {
				t.Fatalf("third Perform = %q, %v", got, err)
			}
			pl := e.fake.PlaylistItems(providers.Spotify, first.MyPlaylist.ID)
			if len(pl) != 130 {
				t.Fatalf("playlist has %d items, want 130", len(pl))
			}
			seen := map[string]bool{}
			for i, uri := range pl {
				if seen[uri] {
					t.Fatalf("duplicate %s", uri)
				}
				seen[uri] = true
				if want := "spotify:track:" + ids[i]; uri != want {
					t.Fatalf("item %d = %s, want %s", i, uri, want)
				}
			}
		})
	}
}

// TestOwnPlaylistFindsOursAmongMany: a fan with more playlists than one
// page holds still gets ours back (found by its marker), and a playlist
// with the marker that another user owns (one the fan follows) is not
// taken for ours.
func TestOwnPlaylistFindsOursAmongMany(t *testing.T) {
	e := newEnv(t, spotify.ModeLibrary)
	ctx := ctxT(t)
	c := e.client(ctx, nil)
	tgt := e.target()
	for i := range 60 {
		other := tgt
		other.MyPlaylist.Key = fmt.Sprintf("other-%d", i)
		if _, err := c.OwnPlaylist(ctx, other); err != nil {
			t.Fatal(err)
		}
	}
	id, err := c.OwnPlaylist(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.client(ctx, nil).OwnPlaylist(ctx, tgt)
	if err != nil || again != id {
		t.Fatalf("second OwnPlaylist = %q, %v; want %q", again, err, id)
	}
	if n := len(e.fake.User(providers.Spotify, e.user).Playlists); n != 61 {
		t.Fatalf("the fan owns %d playlists, want 61", n)
	}
	// Another fan follows the first fan's playlist: it carries the
	// marker, but it is not theirs to fill.
	f2 := &env{fake: e.fake, p: e.p, user: e.user + "-2"}
	f2.tok = f2.connect(t, e.p.Scopes(allActions))
	t2 := f2.target()
	t2.FollowPlaylistID = id
	if _, err := f2.client(ctx, nil).Perform(ctx, providers.ActionFollowPlaylist, t2); err == nil {
		t.Fatal("followed another fan's private playlist")
	}
	mine, err := f2.client(ctx, nil).OwnPlaylist(ctx, t2)
	if err != nil || mine == id {
		t.Fatalf("the second fan's playlist = %q, %v; want a new one of theirs", mine, err)
	}
}

func TestRefresh(t *testing.T) {
	for _, rotate := range []bool{true, false} {
		t.Run(fmt.Sprintf("rotate=%v", rotate), func(t *testing.T) {
			e := newEnv(t, spotify.ModeLibrary, providers.ActionSave)
			e.fake.SetRotation(providers.Spotify, rotate)
			ctx := ctxT(t)
			old := *e.tok
			e.tok.Expiry = time.Now().Add(-time.Minute) // expired: refresh first

			var mu sync.Mutex
			var got []*oauth2.Token
			c := e.client(ctx, func(t *oauth2.Token) { mu.Lock(); got = append(got, t); mu.Unlock() })
			if _, err := c.Perform(ctx, providers.ActionSave, target); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 {
				t.Fatalf("onRefresh called %d times, want 1", len(got))
			}
			nt := got[0]
			if nt.AccessToken == old.AccessToken || !nt.Valid() {
				t.Fatal("refresh did not yield a new valid access token")
			}
			if rotate && (nt.RefreshToken == old.RefreshToken || nt.RefreshToken == "") {
				t.Fatal("rotated refresh token not reported")
			}
			if !rotate && nt.RefreshToken != old.RefreshToken {
				t.Fatalf("refresh without rotation changed the refresh token")
			}
			if rotate {
				// The old refresh token is dead; the reported one works.
				stale := old
				stale.Expiry = time.Now().Add(-time.Minute)
				_, err := e.p.Client(ctx, &stale, nil).InEffect(ctx, providers.ActionSave, target)
				if providers.ClassOf(err) != providers.GrantInvalid {
					t.Fatalf("old refresh token: %v, want grant_invalid", err)
				}
				fresh := *nt
				fresh.Expiry = time.Now().Add(-time.Minute)
				if _, err := e.p.Client(ctx, &fresh, nil).InEffect(ctx, providers.ActionSave, target); err != nil {
					t.Fatalf("reported refresh token: %v", err)
				}
			}
		})
	}
}

// A 401 on a token we believed valid forces one refresh and one retry.
func TestUnauthorizedRefreshesOnce(t *testing.T) {
	e := newEnv(t, spotify.ModeLibrary, providers.ActionSave)
	ctx := ctxT(t)
	var n int
	var mu sync.Mutex
	c := e.client(ctx, func(*oauth2.Token) { mu.Lock(); n++; mu.Unlock() })
	e.fake.ExpireAccessTokens(providers.Spotify, e.user)
	if got, err := c.Perform(ctx, providers.ActionSave, target); err != nil || got != providers.OutcomeOK {
		t.Fatalf("Perform after server-side expiry = %q, %v", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 1 {
		t.Fatalf("refreshed %d times, want 1", n)
	}
	if got := e.fake.Calls("PUT /v1/me/library", 401); got != 1 {
		t.Fatalf("401s = %d, want 1", got)
	}
}

func TestErrorClasses(t *testing.T) {
	future := time.Now().Add(time.Hour)
	cases := []struct {
		name    string
		mode    string
		action  providers.Action
		target  providers.Target
		scopes  []providers.Action // connect with these scopes only (default: all)
		setup   func(e *env)
		class   providers.Class
		status  int
		reason  string
		check   func(t *testing.T, pe *providers.Error)
		recover func(e *env) // after which the action succeeds
	}{
		{
			name: "rate limited", action: providers.ActionSave, target: target,
			// 0.5/s, burst 1, spent by a check: the PUT waits 2s.
			setup: func(e *env) {
				e.fake.SetRateLimit(providers.Spotify, 0.5, 1)
				ctx := context.Background()
				_, _ = e.client(ctx, nil).InEffect(ctx, providers.ActionSave, target)
			},
			class: providers.RateLimited, status: 429,
			check: func(t *testing.T, pe *providers.Error) {
				if pe.RetryAfter != 2*time.Second {
					t.Errorf("RetryAfter = %v, want 2s", pe.RetryAfter)
				}
			},
			recover: func(e *env) { e.fake.SetRateLimit(providers.Spotify, 0, 0) },
		},
		{
			name: "quota exceeded", action: providers.ActionFollow, target: target,
			setup: func(e *env) { e.fake.ExhaustQuota(providers.Spotify, time.Now().Add(90*time.Second)) },
			class: providers.QuotaExhausted, status: 429, reason: "QUOTA_EXCEEDED",
			check: func(t *testing.T, pe *providers.Error) {
				if d := time.Until(pe.ResetAt); d < 80*time.Second || d > 92*time.Second {
					t.Errorf("ResetAt in %v, want ~90s", d)
				}
			},
			recover: func(e *env) { e.fake.ResetQuota(providers.Spotify) },
		},
		{
			name: "5xx", mode: spotify.ModeLegacy, action: providers.ActionSave, target: target,
			setup: func(e *env) { e.fake.SetErrorRate(providers.Spotify, 1) },
			class: providers.Retryable, status: 503,
			recover: func(e *env) { e.fake.SetErrorRate(providers.Spotify, 0) },
		},
		{
			name: "revoked grant", action: providers.ActionFollowPlaylist, target: target,
			setup: func(e *env) { e.fake.RevokeUser(providers.Spotify, e.user) },
			class: providers.GrantInvalid, reason: "invalid_grant",
			check: func(t *testing.T, pe *providers.Error) {
				if pe.Status != 400 {
					t.Errorf("Status = %d, want 400 from the token endpoint", pe.Status)
				}
			},
		},
		{
			// Spotify answers 400 "Payload contains a non-existing ID" for
			// an album not out yet: not live, not a permanent failure.
			name: "album not live", action: providers.ActionSave, target: target,
			setup: func(e *env) { e.fake.SetNotLiveUntil("album1", future) },
			class: providers.NotLiveYet, status: 400, reason: "non_existing_id",
			recover: func(e *env) { e.fake.SetNotLiveUntil("album1", time.Time{}) },
		},
		{
			name: "album not live (legacy)", mode: spotify.ModeLegacy, action: providers.ActionSave, target: target,
			setup: func(e *env) { e.fake.SetNotLiveUntil("album1", future) },
			class: providers.NotLiveYet, status: 400, reason: "non_existing_id",
			recover: func(e *env) { e.fake.SetNotLiveUntil("album1", time.Time{}) },
		},
		{
			name: "track not live (legacy playlist)", mode: spotify.ModeLegacy, action: providers.ActionAddToMyPlaylist, target: target,
			setup: func(e *env) { e.fake.SetNotLiveUntil("track2", future) },
			class: providers.NotLiveYet, status: 400, reason: "non_existing_id",
			recover: func(e *env) { e.fake.SetNotLiveUntil("track2", time.Time{}) },
		},
		{
			// An artist's playlist not out yet is, like an album, a
			// non-existing ID: not live.
			name: "playlist to follow not live", action: providers.ActionFollowPlaylist, target: target,
			setup: func(e *env) { e.fake.SetNotLiveUntil("artistplaylist", future) },
			class: providers.NotLiveYet, status: 400, reason: "non_existing_id",
			recover: func(e *env) { e.fake.SetNotLiveUntil("artistplaylist", time.Time{}) },
		},
		{
			name: "the fan's playlist is gone", action: providers.ActionAddToMyPlaylist,
			target: func() providers.Target { t := target; t.MyPlaylist.ID = "gone"; return t }(),
			setup:  func(e *env) { e.fake.SetNotLiveUntil("gone", future) },
			class:  providers.Permanent, status: 404, reason: "playlist_not_found",
		},
		{
			name: "legacy endpoints forbidden (development mode)", mode: spotify.ModeLegacy, action: providers.ActionFollow, target: target,
			setup: func(e *env) { e.fake.SetLegacyForbidden(true) },
			class: providers.Permanent, status: 403, reason: "forbidden",
			recover: func(e *env) { e.fake.SetLegacyForbidden(false) },
		},
		{
			// Without playlist-read-private the fan's private playlists
			// are invisible, and without playlist-modify-private none can
			// be made.
			name: "playlist scopes not granted", action: providers.ActionAddToMyPlaylist, target: target,
			scopes: []providers.Action{providers.ActionSave},
			class:  providers.Permanent, status: 403, reason: "forbidden",
		},
		{
			// Following an artist through /me/library needs the follow
			// scope; the library scopes are not enough.
			name: "follow scope not granted", action: providers.ActionFollow, target: target,
			scopes: []providers.Action{providers.ActionSave},
			class:  providers.Permanent, status: 403, reason: "forbidden",
		},
		{
			name: "follow scope not granted (legacy)", mode: spotify.ModeLegacy, action: providers.ActionFollow, target: target,
			scopes: []providers.Action{providers.ActionSave},
			class:  providers.Permanent, status: 403, reason: "forbidden",
		},
		{
			name: "playlist follow scope not granted", action: providers.ActionFollowPlaylist, target: target,
			scopes: []providers.Action{providers.ActionSave, providers.ActionFollow},
			class:  providers.Permanent, status: 403, reason: "forbidden",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			if mode == "" {
				mode = spotify.ModeLibrary
			}
			e := newEnv(t, mode, tc.scopes...)
			ctx := ctxT(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			c := e.client(ctx, nil)
			tgt := tc.target
			tgt.AccountID = e.user
			_, _, err := providerstest.Perform(ctx, c, tc.action, tgt)
			pe, ok := providers.AsError(err)
			if !ok {
				t.Fatalf("Perform error = %v, want *providers.Error", err)
			}
			if pe.Class != tc.class || pe.Provider != providers.Spotify || pe.Op != string(tc.action) {
				t.Fatalf("error = %v (class %v), want class %v", err, pe.Class, tc.class)
			}
			if tc.status != 0 && pe.Status != tc.status {
				t.Errorf("Status = %d, want %d", pe.Status, tc.status)
			}
			if tc.reason != "" && pe.Reason != tc.reason {
				t.Errorf("Reason = %q, want %q", pe.Reason, tc.reason)
			}
			if strings.Contains(err.Error(), e.tok.AccessToken) || strings.Contains(err.Error(), e.tok.RefreshToken) {
				t.Fatal("error message carries a token")
			}
			if tc.check != nil {
				tc.check(t, pe)
			}
			if tc.recover != nil {
				tc.recover(e)
				if got, _, err := providerstest.Perform(ctx, c, tc.action, tgt); err != nil || got != providers.OutcomeOK {
					t.Fatalf("after recovery: %q, %v", got, err)
				}
			}
		})
	}
}

func TestNetworkErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(fake.New(fake.Options{}))
	base := srv.URL
	srv.Close() // nothing listens any more
	p := spotify.New(spotify.Config{ClientID: clientID, AccountsURL: base, APIURL: base + "/v1/"})
	ctx := ctxT(t)
	tok := &oauth2.Token{AccessToken: "a", RefreshToken: "r", Expiry: time.Now().Add(time.Hour)}
	_, err := p.Client(ctx, tok, nil).Perform(ctx, providers.ActionSave, target)
	if providers.ClassOf(err) != providers.Retryable {
		t.Fatalf("err = %v, want retryable", err)
	}
}

func TestRevokeUnsupportedAndNoQuota(t *testing.T) {
	p := spotify.New(spotify.Config{})
	if err := p.Revoke(context.Background(), "rt"); !errors.Is(err, providers.ErrRevokeUnsupported) {
		t.Fatalf("Revoke = %v", err)
	}
	for _, a := range allActions {
		if p.QuotaCost(a, "") != 0 {
			t.Errorf("QuotaCost(%s) = %d", a, p.QuotaCost(a, ""))
		}
	}
	if p.Name() != providers.Spotify || p.Mode() != spotify.ModeLibrary {
		t.Fatalf("Name/Mode = %s/%s", p.Name(), p.Mode())
	}
}

// TestScopesAndActions: each action asks for the scopes its endpoints
// need, in each mode, and nothing else.
func TestScopesAndActions(t *testing.T) {
	lib := spotify.New(spotify.Config{})
	leg := spotify.New(spotify.Config{Mode: spotify.ModeLegacy})
	for _, tc := range []struct {
		p      *spotify.Provider
		action providers.Action
		want   []string
	}{
		{lib, providers.ActionSave, []string{"user-library-modify", "user-library-read"}},
		{lib, providers.ActionFollow, []string{"user-follow-modify", "user-follow-read"}},
		{leg, providers.ActionFollow, []string{"user-follow-modify", "user-follow-read"}},
		{lib, providers.ActionFollowPlaylist, []string{"playlist-modify-public", "playlist-read-private"}},
		{leg, providers.ActionFollowPlaylist, []string{"playlist-modify-private", "playlist-read-private"}},
		{lib, providers.ActionAddToMyPlaylist, []string{"playlist-modify-private", "playlist-read-private"}},
		{leg, providers.ActionAddToMyPlaylist, []string{"playlist-modify-private", "playlist-read-private"}},
		{lib, providers.ActionPlaylist, nil},
	} {
		if got := tc.p.Scopes([]providers.Action{tc.action}); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s scopes = %v, want %v", tc.p.Mode(), tc.action, got, tc.want)
		}
	}
	my := providers.MyPlaylist{Name: "Mine", Key: "k"}
	for _, tc := range []struct {
		t    providers.Target
		want []providers.Action
	}{
		{providers.Target{}, nil},
		{providers.Target{AlbumIDs: []string{"a"}}, []providers.Action{providers.ActionSave}},
		{providers.Target{ArtistIDs: []string{"a"}, FollowPlaylistID: "p"}, []providers.Action{providers.ActionFollow, providers.ActionFollowPlaylist}},
		{providers.Target{TrackIDs: []string{"t"}, MyPlaylist: my}, []providers.Action{providers.ActionSave, providers.ActionAddToMyPlaylist}},
		{providers.Target{AlbumIDs: []string{"a"}, MyPlaylist: my}, []providers.Action{providers.ActionSave}}, // no tracks to add
	} {
		if got := lib.Actions(tc.t); !slices.Equal(got, tc.want) {
			t.Errorf("Actions(%+v) = %v, want %v", tc.t, got, tc.want)
		}
	}
}

// TestCallsCountsWhatPerformSends: Calls, which the shared limiter
// charges up front, is exactly the number of requests a Perform that
// finds everything missing sends, in both modes and past every batch
// size.
func TestCallsCountsWhatPerformSends(t *testing.T) {
	ids := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return out
	}
	big := providers.Target{AlbumIDs: ids("album", 25), TrackIDs: ids("track", 120), ArtistIDs: ids("artist", 55),
		FollowPlaylistID: "pl-big", MyPlaylist: providers.MyPlaylist{Name: "Big", Key: "big"}}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, mode)
			ctx := ctxT(t)
			c := e.client(ctx, nil)
			total := func() int {
				n := 0
				for _, v := range e.fake.CallCounts() {
					n += v
				}
				return n
			}
			big := big
			big.AccountID = e.user
			for _, a := range e.p.Actions(big) {
				before := total()
				if got, _, err := providerstest.Perform(ctx, c, a, big); err != nil || got != providers.OutcomeOK {
					t.Fatalf("%s: %q, %v", a, got, err)
				}
				if sent, want := total()-before, e.p.Calls(a, big); sent != want {
					t.Errorf("%s: Perform sent %d requests, Calls says %d", a, sent, want)
				}
			}
		})
	}
}

// TestGrantExpiryIsSixCalendarMonths: Spotify's refresh tokens die six
// calendar months after the authorization; a month without the day ends
// on its last day. 182 days is later than that for many dates (every
// authorization in January or September 2026, for one).
func TestGrantExpiryIsSixCalendarMonths(t *testing.T) {
	p := spotify.New(spotify.Config{})
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct{ at, want string }{
		{"2026-01-15T10:00:00Z", "2026-07-15T10:00:00Z"},
		{"2026-01-31T23:30:00Z", "2026-07-31T23:30:00Z"},
		{"2026-08-31T12:00:00Z", "2027-02-28T12:00:00Z"}, // no February 31
		{"2027-08-31T12:00:00Z", "2028-02-29T12:00:00Z"}, // leap year
		{"2026-12-31T00:00:00Z", "2027-06-30T00:00:00Z"},
		{"2026-09-30T08:00:00Z", "2027-03-30T08:00:00Z"},
		{"2026-03-31T01:00:00+02:00", "2026-09-30T23:00:00Z"}, // computed in UTC
	} {
		if got := p.GrantExpiry(utc(tc.at)); !got.Equal(utc(tc.want)) {
			t.Errorf("GrantExpiry(%s) = %s, want %s", tc.at, got.Format(time.RFC3339), tc.want)
		}
	}
	// How many authorization days of 2026–2028 a 182-day rule got wrong.
	wrong, days := 0, 0
	for d := utc("2026-01-01T12:00:00Z"); d.Year() <= 2028; d = d.AddDate(0, 0, 1) {
		days++
		if d.Add(182 * 24 * time.Hour).After(p.GrantExpiry(d)) {
			wrong++
		}
	}
	if days != 1096 || wrong != 244 {
		t.Errorf("182 days outlives six months on %d of %d days, want 244 of 1096", wrong, days)
	}
}

// TestRefreshStopsSixMonthsAfterTheAuthorization: the fake refuses a
// refresh token older than six calendar months with invalid_grant, as
// Spotify does, however often it was refreshed: the client reports a
// dead grant.
func TestRefreshStopsSixMonthsAfterTheAuthorization(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 8, 31, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	f := fake.New(fake.Options{Now: clock})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	u := fake.URLs(srv.URL)
	p := spotify.New(spotify.Config{ClientID: clientID, ClientSecret: "secret", RedirectURL: "https://app.test/callback",
		AccountsURL: u.SpotifyAccountsURL, APIURL: u.SpotifyAPIURL})
	e := &env{fake: f, p: p, user: "fan-six-months"}
	e.tok = e.connect(t, p.Scopes([]providers.Action{providers.ActionSave}))
	ctx := ctxT(t)
	perform := func(at time.Time) error {
		set(at)
		tok := *e.tok
		tok.Expiry = time.Now().Add(-time.Minute) // force a refresh
		_, err := p.Client(ctx, &tok, nil).Perform(ctx, providers.ActionSave, target)
		return err
	}
	if err := perform(time.Date(2027, 2, 28, 11, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("an hour before six months: %v", err)
	}
	err := perform(time.Date(2027, 2, 28, 12, 0, 0, 0, time.UTC))
	if pe, ok := providers.AsError(err); !ok || pe.Class != providers.GrantInvalid || pe.Reason != "invalid_grant" {
		t.Fatalf("six months on: %v, want invalid_grant", err)
	}
}

// TestCombinedLibraryWrite: in library mode saving, following the
// artists and following the playlist go out as one PUT /me/library (one
// per 40 URIs); the legacy endpoints do not combine.
func TestCombinedLibraryWrite(t *testing.T) {
	lib := []providers.Action{providers.ActionSave, providers.ActionFollow, providers.ActionFollowPlaylist}
	all := append(slices.Clone(lib), providers.ActionAddToMyPlaylist)
	if got := spotify.New(spotify.Config{Mode: spotify.ModeLegacy}).Combine(all, target); got != nil {
		t.Errorf("legacy Combine = %v, want none", got)
	}
	e := newEnv(t, spotify.ModeLibrary)
	if got := e.p.Combine(all, target); !slices.Equal(got, lib) {
		t.Fatalf("Combine = %v, want %v", got, lib)
	}
	if got := e.p.Combine([]providers.Action{providers.ActionSave, providers.ActionAddToMyPlaylist}, target); got != nil {
		t.Errorf("Combine of one library action = %v, want none", got)
	}
	// 1 album + 2 tracks + 2 artists + 1 playlist: one request.
	if n := e.p.CombinedCalls(lib, target); n != 1 {
		t.Errorf("CombinedCalls = %d, want 1", n)
	}
	ctx := ctxT(t)
	c := e.client(ctx, nil).(providers.CombinedClient)
	if err := c.PerformCombined(ctx, lib, e.target()); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Calls("PUT /v1/me/library", 200); n != 1 {
		t.Errorf("%d library writes, want 1", n)
	}
	u := e.fake.User(providers.Spotify, e.user)
	if !slices.Equal(u.Albums, []string{"album1"}) || !slices.Equal(u.Tracks, []string{"track1", "track2"}) ||
		!slices.Equal(u.Artists, []string{"artist1", "artist2"}) || !slices.Equal(u.FollowedPlaylists, []string{"artistplaylist"}) {
		t.Fatalf("library = %+v", u)
	}
	// A URI the catalogue does not know refuses the whole write: the
	// worker then performs the actions one by one.
	e.fake.SetNotLiveUntil("artist2", time.Now().Add(time.Hour))
	if err := c.PerformCombined(ctx, lib, e.target()); providers.ClassOf(err) != providers.NotLiveYet {
		t.Errorf("combined write naming an unknown artist = %v, want not live", err)
	}
}
