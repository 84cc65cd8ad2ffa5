package youtube_test

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
	"github.com/presave/presave/internal/providers/youtube"
)

const clientID = "presave-youtube"

type env struct {
	fake *fake.Server
	p    *youtube.Provider
	user string
	tok  *oauth2.Token
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newEnv(t *testing.T, scopes ...string) *env {
	t.Helper()
	f := fake.New(fake.Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	u := fake.URLs(srv.URL)
	p := youtube.New(youtube.Config{
		ClientID: clientID, ClientSecret: "secret", RedirectURL: "https://app.test/callback",
		AuthURL: u.GoogleAuthURL, TokenURL: u.GoogleTokenURL, RevokeURL: u.GoogleRevokeURL,
		UserinfoURL: u.GoogleUserinfoURL, APIURL: u.YouTubeAPIURL,
	})
	if scopes == nil {
		scopes = p.Scopes(allActions)
	}
	e := &env{fake: f, p: p, user: "1000" + fmt.Sprint(len(t.Name()))}
	ctx := ctxT(t)
	verifier := oauth2.GenerateVerifier()
	authURL := p.AuthCodeURL("st", verifier, scopes)
	q, err := fake.Consent(ctx, fake.WithUser(authURL, e.user))
	if err != nil || q.Get("state") != "st" || q.Get("code") == "" {
		t.Fatalf("consent: %v, %v", q, err)
	}
	g, err := p.Exchange(ctx, q.Get("code"), verifier)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if g.AccountID != e.user || g.Token.RefreshToken == "" || !slices.Equal(g.Scopes, scopes) {
		t.Fatalf("grant = %q %v, want sub %q with a refresh token", g.AccountID, g.Scopes, e.user)
	}
	e.tok = g.Token
	return e
}

const artistChannel = "UCartistchannel000000000"

var target = providers.Target{VideoID: "vid1", ChannelID: artistChannel,
	MyPlaylist: providers.MyPlaylist{Name: "Night Drive: The Examples", Description: "Pre-saved.", Key: "release-1"}}

var allActions = []providers.Action{providers.ActionLike, providers.ActionSubscribe, providers.ActionAddToMyPlaylist}

func TestOAuthURLAndScopes(t *testing.T) {
	p := youtube.New(youtube.Config{ClientID: clientID})
	if got, want := p.Scopes([]providers.Action{providers.ActionLike}), []string{"openid", "https://www.googleapis.com/auth/youtube"}; !slices.Equal(got, want) {
		t.Fatalf("Scopes = %v, want %v", got, want)
	}
	u := p.AuthCodeURL("s", oauth2.GenerateVerifier(), p.Scopes([]providers.Action{providers.ActionLike}))
	for _, want := range []string{"https://accounts.google.com/o/oauth2/auth?", "access_type=offline", "code_challenge_method=S256", "prompt=consent"} {
		if !strings.Contains(u, want) {
			t.Errorf("AuthCodeURL %q lacks %q", u, want)
		}
	}
	if strings.Contains(u, "email") || strings.Contains(u, "profile") {
		t.Errorf("AuthCodeURL asks for profile data: %s", u)
	}
	if got := p.Actions(target); !slices.Equal(got, allActions) {
		t.Errorf("Actions = %v", got)
	}
	if got := p.Actions(providers.Target{MyPlaylist: target.MyPlaylist}); got != nil {
		t.Errorf("Actions with a playlist but no video = %v", got)
	}
	if got := p.Actions(providers.Target{ChannelID: artistChannel}); !slices.Equal(got, []providers.Action{providers.ActionSubscribe}) {
		t.Errorf("Actions with a channel only = %v", got)
	}
	for _, tc := range []struct {
		a        providers.Action
		out      providers.Outcome
		want     int
		calls    int
		playlist string
	}{
		// A like and a subscription are one unchecked write.
		{providers.ActionLike, "", 50, 1, ""},
		{providers.ActionLike, providers.OutcomeOK, 50, 1, ""},
		{providers.ActionSubscribe, "", 50, 1, ""},
		{providers.ActionSubscribe, providers.OutcomeAlready, 50, 1, ""},
		{providers.ActionAddToMyPlaylist, "", 102, 4, ""},
		{providers.ActionAddToMyPlaylist, providers.OutcomeAlready, 2, 2, "PLknown"},
		{providers.ActionSave, "", 0, 1, ""},
	} {
		tgt := target
		tgt.MyPlaylist.ID = tc.playlist
		if got := p.QuotaCost(tc.a, tc.out); got != tc.want {
			t.Errorf("QuotaCost(%s, %q) = %d, want %d", tc.a, tc.out, got, tc.want)
		}
		if got := p.Calls(tc.a, tgt); got != tc.calls {
			t.Errorf("Calls(%s, playlist %q) = %d, want %d", tc.a, tc.playlist, got, tc.calls)
		}
	}
}

func TestWrongVerifier(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	q, err := fake.Consent(ctx, e.p.AuthCodeURL("s", oauth2.GenerateVerifier(), []string{"openid"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.p.Exchange(ctx, q.Get("code"), oauth2.GenerateVerifier())
	if pe, ok := providers.AsError(err); !ok || pe.Class != providers.GrantInvalid || pe.Reason != "invalid_grant" {
		t.Fatalf("Exchange with wrong verifier = %v", err)
	}
}

func TestActionsIdempotentAndQuota(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.p.Client(ctx, e.tok, nil)
	tgt := target
	for _, a := range e.p.Actions(tgt) {
		before := e.fake.QuotaUsed(clientID)
		if a == providers.ActionAddToMyPlaylist {
			id, err := c.OwnPlaylist(ctx, tgt)
			if err != nil {
				t.Fatalf("OwnPlaylist: %v", err)
			}
			tgt.MyPlaylist.ID = id
		}
		if in, err := c.InEffect(ctx, a, tgt); err != nil || in {
			t.Fatalf("%s InEffect before = %v, %v", a, in, err)
		}
		if got, err := c.Perform(ctx, a, tgt); err != nil || got != providers.OutcomeOK {
			t.Fatalf("%s Perform = %q, %v", a, got, err)
		}
		// The InEffect check above cost a read the worker does not make.
		if used := e.fake.QuotaUsed(clientID) - before - youtube.CostRead; used != e.p.QuotaCost(a, providers.OutcomeOK) {
			t.Errorf("%s used %d units, QuotaCost says %d", a, used, e.p.QuotaCost(a, providers.OutcomeOK))
		}
		// Retries, from this client and from a fresh one (which has not
		// recorded the playlist and finds it by its marker), duplicate
		// nothing: the like is written again (videos.rate sets it: ok),
		// the subscription answers subscriptionDuplicate (already), the
		// playlist's item is checked (already).
		want := providers.OutcomeAlready
		if a == providers.ActionLike {
			want = providers.OutcomeOK
		}
		for _, cl := range []providers.Client{c, e.p.Client(ctx, e.tok, nil)} {
			before := e.fake.QuotaUsed(clientID)
			got, again, err := providerstest.Perform(ctx, cl, a, target)
			if err != nil || got != want || again.MyPlaylist.ID != tgt.MyPlaylist.ID {
				t.Fatalf("%s retry = %q (playlist %q), %v; want %s (playlist %q)", a, got, again.MyPlaylist.ID, err, want, tgt.MyPlaylist.ID)
			}
			if used := e.fake.QuotaUsed(clientID) - before; used > e.p.QuotaCost(a, got) {
				t.Errorf("%s retry used %d units, QuotaCost says at most %d", a, used, e.p.QuotaCost(a, got))
			}
		}
		if in, err := c.InEffect(ctx, a, tgt); err != nil || !in {
			t.Fatalf("%s InEffect after = %v, %v", a, in, err)
		}
	}
	u := e.fake.User(providers.YouTube, e.user)
	if !slices.Equal(u.Likes, []string{"vid1"}) || !slices.Equal(u.Subscriptions, []string{artistChannel}) {
		t.Fatalf("likes %v, subscriptions %v", u.Likes, u.Subscriptions)
	}
	if len(u.Playlists) != 1 || u.Playlists[0].Name != target.MyPlaylist.Name || u.Playlists[0].Public ||
		!strings.HasSuffix(u.Playlists[0].Description, "[presave:release-1]") || !slices.Equal(u.Playlists[0].Items, []string{"vid1"}) {
		t.Fatalf("the fan's playlists = %+v, want one private playlist holding vid1 once", u.Playlists)
	}
	for route, want := range map[string]int{"POST /youtube/v3/videos/rate 204": 3, "POST /youtube/v3/subscriptions 200": 1,
		"POST /youtube/v3/subscriptions 400": 2, "POST /youtube/v3/playlists 200": 1, "POST /youtube/v3/playlistItems 200": 1} {
		if n := e.fake.State().Calls[route]; n != want {
			t.Errorf("%s calls = %d, want %d", route, n, want)
		}
	}
}

// TestTheArtistsPlaylistIsNotTheFans: adding to a playlist the fan does
// not own is what YouTube refuses (403 playlistItemsNotAccessible; 400
// playlistOperationUnsupported for an uploads playlist), and so does the
// fake.
func TestTheArtistsPlaylistIsNotTheFans(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.p.Client(ctx, e.tok, nil)
	for id, want := range map[string]string{"PLtheartistsplaylist0001": "playlistItemsNotAccessible", "UUtheartistsuploads00001": "playlistOperationUnsupported"} {
		tgt := target
		tgt.MyPlaylist.ID = id
		_, err := c.Perform(ctx, providers.ActionAddToMyPlaylist, tgt)
		if pe, ok := providers.AsError(err); !ok || pe.Reason != want || pe.Class != providers.Permanent {
			t.Errorf("adding to %s: %v, want %s", id, err, want)
		}
	}
}

func TestRefresh(t *testing.T) {
	for _, rotate := range []bool{true, false} {
		t.Run(fmt.Sprintf("rotate=%v", rotate), func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetRotation(providers.YouTube, rotate)
			ctx := ctxT(t)
			old := *e.tok
			var mu sync.Mutex
			var got []*oauth2.Token
			c := e.p.Client(ctx, e.tok, func(t *oauth2.Token) { mu.Lock(); got = append(got, t); mu.Unlock() })
			// Server-side expiry: the client learns it from a 401.
			e.fake.ExpireAccessTokens(providers.YouTube, e.user)
			if _, err := c.Perform(ctx, providers.ActionLike, target); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0].AccessToken == old.AccessToken {
				t.Fatalf("onRefresh calls = %d, want 1 with a new access token", len(got))
			}
			if rotated := got[0].RefreshToken != old.RefreshToken; rotated != rotate || got[0].RefreshToken == "" {
				t.Fatalf("refresh token rotated = %v, want %v", rotated, rotate)
			}
		})
	}
}

func pacificMidnightAfter(t time.Time) time.Time {
	la, _ := time.LoadLocation("America/Los_Angeles")
	y, m, d := t.In(la).Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, la)
}

func TestErrorClasses(t *testing.T) {
	future := time.Now().Add(time.Hour)
	cases := []struct {
		name    string
		action  providers.Action
		scopes  []string
		setup   func(e *env)
		class   providers.Class
		status  int
		reason  string
		check   func(t *testing.T, pe *providers.Error)
		recover func(e *env)
	}{
		{
			name: "quota exhausted", action: providers.ActionLike,
			setup: func(e *env) { e.fake.ExhaustQuota(providers.YouTube, time.Time{}) },
			class: providers.QuotaExhausted, status: 403, reason: "quotaExceeded",
			check: func(t *testing.T, pe *providers.Error) {
				if want := pacificMidnightAfter(time.Now()); !pe.ResetAt.Equal(want) {
					t.Errorf("ResetAt = %v, want %v", pe.ResetAt, want)
				}
			},
			recover: func(e *env) { e.fake.ResetQuota(providers.YouTube) },
		},
		{
			name: "daily budget spent by writes", action: providers.ActionSubscribe,
			// The list (1 unit) fits, the insert (50) does not.
			setup: func(e *env) { e.fake.SetDailyQuota(30) },
			class: providers.QuotaExhausted, status: 403, reason: "quotaExceeded",
			recover: func(e *env) { e.fake.SetDailyQuota(10000) },
		},
		{
			// Google rate-limits with 403 rateLimitExceeded and no
			// Retry-After: rate limited, and the caller picks the wait.
			name: "rate limited", action: providers.ActionLike,
			// 0.25/s, burst 1, spent by a check: the write is refused.
			setup: func(e *env) {
				e.fake.SetRateLimit(providers.YouTube, 0.25, 1)
				ctx := context.Background()
				_, _ = e.p.Client(ctx, e.tok, nil).InEffect(ctx, providers.ActionLike, target)
			},
			class: providers.RateLimited, status: 403, reason: "rateLimitExceeded",
			check: func(t *testing.T, pe *providers.Error) {
				if pe.RetryAfter != 0 {
					t.Errorf("RetryAfter = %v, want 0 (Google names no wait)", pe.RetryAfter)
				}
			},
			recover: func(e *env) { e.fake.SetRateLimit(providers.YouTube, 0, 0) },
		},
		{
			// A Google account without a YouTube channel: 401
			// youtubeSignupRequired, which no refresh or reconnect fixes.
			name: "no channel", action: providers.ActionLike,
			setup: func(e *env) { e.fake.SetNoChannel(e.user) },
			class: providers.Permanent, status: 401, reason: "youtube_channel_required",
		},
		{
			name: "5xx", action: providers.ActionAddToMyPlaylist,
			setup: func(e *env) { e.fake.SetErrorRate(providers.YouTube, 1) },
			class: providers.Retryable, status: 503, reason: "backendError",
			recover: func(e *env) { e.fake.SetErrorRate(providers.YouTube, 0) },
		},
		{
			name: "revoked grant", action: providers.ActionLike,
			setup: func(e *env) { e.fake.RevokeUser(providers.YouTube, e.user) },
			class: providers.GrantInvalid, reason: "invalid_grant",
		},
		{
			name: "video not live", action: providers.ActionLike,
			setup: func(e *env) { e.fake.SetNotLiveUntil("vid1", future) },
			class: providers.NotLiveYet, status: 404, reason: "videoNotFound",
			recover: func(e *env) { e.fake.SetNotLiveUntil("vid1", time.Time{}) },
		},
		{
			name: "video not live (playlist)", action: providers.ActionAddToMyPlaylist,
			setup: func(e *env) { e.fake.SetNotLiveUntil("vid1", future) },
			class: providers.NotLiveYet, status: 404, reason: "videoNotFound",
			recover: func(e *env) { e.fake.SetNotLiveUntil("vid1", time.Time{}) },
		},
		{
			name: "no such channel", action: providers.ActionSubscribe,
			setup: func(e *env) { e.fake.SetNotLiveUntil(artistChannel, future) },
			class: providers.Permanent, status: 404, reason: "publisherNotFound",
		},
		{
			name: "scope not granted", action: providers.ActionLike, scopes: []string{"openid"},
			class: providers.Permanent, status: 403, reason: "insufficientPermissions",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.scopes...)
			ctx := ctxT(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			c := e.p.Client(ctx, e.tok, nil)
			_, _, err := providerstest.Perform(ctx, c, tc.action, target)
			pe, ok := providers.AsError(err)
			if !ok {
				t.Fatalf("error = %v, want *providers.Error", err)
			}
			if pe.Class != tc.class || pe.Provider != providers.YouTube {
				t.Fatalf("error = %v (class %v), want %v", err, pe.Class, tc.class)
			}
			if tc.status != 0 && pe.Status != tc.status {
				t.Errorf("Status = %d, want %d", pe.Status, tc.status)
			}
			if pe.Reason != tc.reason {
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
				if got, _, err := providerstest.Perform(ctx, c, tc.action, target); err != nil || got != providers.OutcomeOK {
					t.Fatalf("after recovery: %q, %v", got, err)
				}
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if err := e.p.Revoke(ctx, e.tok.RefreshToken); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	rev := e.fake.Revoked()
	if len(rev) != 1 || rev[0].User != e.user || rev[0].ClientID != clientID || rev[0].Provider != providers.YouTube {
		t.Fatalf("revoked = %+v", rev)
	}
	// The grant is gone: the access token answers 401, the refresh invalid_grant.
	_, err := e.p.Client(ctx, e.tok, nil).Perform(ctx, providers.ActionLike, target)
	if providers.ClassOf(err) != providers.GrantInvalid {
		t.Fatalf("after revoke: %v, want grant_invalid", err)
	}
	// Revoking again says the grant is already gone, which settles it.
	err = e.p.Revoke(ctx, e.tok.RefreshToken)
	if outcome, settled := providers.RevokeSettled(err); !errors.Is(err, providers.ErrAlreadyRevoked) || !settled || outcome != providers.RevokeAlready {
		t.Fatalf("second Revoke: %v (%s, settled %v), want ErrAlreadyRevoked", err, outcome, settled)
	}
	if len(e.fake.Revoked()) != 1 {
		t.Fatal("second revoke recorded")
	}
}

func TestNextQuotaReset(t *testing.T) {
	la, _ := time.LoadLocation("America/Los_Angeles")
	for _, tc := range []struct{ now, want time.Time }{
		// 07:59 UTC is 23:59 PST (UTC-8): reset one minute later.
		{time.Date(2026, 1, 15, 7, 59, 0, 0, time.UTC), time.Date(2026, 1, 15, 0, 0, 0, 0, la)},
		{time.Date(2026, 7, 4, 12, 0, 0, 0, time.UTC), time.Date(2026, 7, 5, 0, 0, 0, 0, la)},
	} {
		if got := youtube.NextQuotaReset(tc.now); !got.Equal(tc.want) {
			t.Errorf("NextQuotaReset(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
}

// TestGrantExpiryInTestingStatus: a Google OAuth app in "Testing" status
// gets refresh tokens that stop after 7 days; a published app's have no
// fixed lifetime.
func TestGrantExpiryInTestingStatus(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if got := youtube.New(youtube.Config{}).GrantExpiry(at); !got.IsZero() {
		t.Errorf("published app: GrantExpiry = %v, want none", got)
	}
	if got, want := youtube.New(youtube.Config{Testing: true}).GrantExpiry(at), at.Add(7*24*time.Hour); !got.Equal(want) {
		t.Errorf("testing app: GrantExpiry = %v, want %v", got, want)
	}
}
