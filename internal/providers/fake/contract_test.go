package fake_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
)

// The contract tests state, endpoint by endpoint, what the services'
// documentation says a request must look like (method, path, parameters,
// limits, the scope it needs) and what each answer is (status and body),
// and check the fake against that with raw HTTP: no client of ours is
// involved, so a misunderstanding shared by a client and the fake cannot
// hide here. The clients' own tests (internal/providers/spotify and
// youtube, TestErrorClasses) run the real clients against the same
// answers.
//
// Sources: Spotify Web API reference (each endpoint's page: "Authorization
// scopes", request parameters, response codes), its February 2026
// changelog and migration guide; YouTube Data API reference (each
// method's parameters, quota cost and errors table) and Google's OAuth 2.0
// documentation.

// contract is one documented request and its documented answer.
type contract struct {
	name string
	// scopes and user: the grant the request is made with (at the
	// provider of the list the contract is in).
	scopes []string
	user   string
	// setup runs before the request (fake state, other requests).
	setup  func(t *testing.T, c *contractEnv)
	method string
	path   string // may hold {user}, {own}: the user, their own playlist
	body   string
	status int
	// contains are substrings the answer's body must hold (an error's
	// message or reason); header, when set, a header the answer must or
	// (value "") must not carry.
	contains []string
	header   map[string]string
}

type contractEnv struct {
	t    *testing.T
	f    *fake.Server
	srv  *httptest.Server
	now  time.Time
	mu   sync.Mutex
	own  string // a playlist the user created (setup's createOwn)
	tok  string
	user string
}

func (c *contractEnv) clock() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *contractEnv) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// grant authorizes user at p with scopes through the fake's consent and
// token endpoints, as the provider's OAuth server does, and returns the
// token endpoint's answer.
func (c *contractEnv) grant(p providers.Name, user string, scopes []string) map[string]any {
	c.t.Helper()
	auth, token := "/authorize", "/api/token"
	if p == providers.YouTube {
		auth, token = "/o/oauth2/auth", "/google/token"
	}
	q := url.Values{"client_id": {"app"}, "response_type": {"code"}, "redirect_uri": {"https://app.test/cb"},
		"scope": {strings.Join(scopes, " ")}, "state": {"s"}, "user": {user}}
	got, err := fake.Consent(c.t.Context(), c.srv.URL+auth+"?"+q.Encode())
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.PostForm(c.srv.URL+token, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")},
		"client_id": {"app"}, "client_secret": {"s"}, "redirect_uri": {"https://app.test/cb"}})
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("token: HTTP %d %v", resp.StatusCode, err)
	}
	return out
}

// do sends one API request with the bearer token.
func (c *contractEnv) do(method, path, body, tok string) (*http.Response, string) {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.srv.URL+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// createOwn creates a private playlist of the request's user and
// remembers its ID as {own}.
func createOwn(t *testing.T, c *contractEnv) {
	t.Helper()
	path, body := "/v1/me/playlists", `{"name":"Mine","public":false}`
	if strings.HasPrefix(c.user, "g") {
		path, body = "/youtube/v3/playlists?part=snippet,status", `{"snippet":{"title":"Mine"},"status":{"privacyStatus":"private"}}`
	}
	all := []string{"playlist-modify-private", "https://www.googleapis.com/auth/youtube"}
	tok := c.grant(providerOf(c.user), c.user, all)["access_token"].(string)
	resp, b := c.do(http.MethodPost, path, body, tok)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("create own playlist: HTTP %d %s", resp.StatusCode, b)
	}
	var pl struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal([]byte(b), &pl)
	c.own = pl.ID
}

// providerOf: the contract users are named "s…" at Spotify, "g…" at Google.
func providerOf(user string) providers.Name {
	if strings.HasPrefix(user, "g") {
		return providers.YouTube
	}
	return providers.Spotify
}

func ids(prefix string, n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return strings.Join(out, ",")
}

func uris(kind string, n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("spotify:%s:id%d", kind, i)
	}
	return url.QueryEscape(strings.Join(out, ","))
}

const (
	libModify  = "user-library-modify"
	libRead    = "user-library-read"
	followMod  = "user-follow-modify"
	followRead = "user-follow-read"
	plPublic   = "playlist-modify-public"
	plPrivate  = "playlist-modify-private"
	plRead     = "playlist-read-private"
	ytScope    = "https://www.googleapis.com/auth/youtube"
)

func notLive(id string) func(*testing.T, *contractEnv) {
	return func(_ *testing.T, c *contractEnv) { c.f.SetNotLiveUntil(id, c.clock().Add(time.Hour)) }
}

var spotifyContracts = []contract{
	// Save Items to Library: PUT /me/library?uris=… (at most 40 URIs);
	// albums and tracks need user-library-modify, artists
	// user-follow-modify, playlists playlist-modify-public.
	{name: "library save album", scopes: []string{libModify}, method: "PUT", path: "/v1/me/library?uris=spotify:album:a1", status: 200},
	{name: "library save album without scope", scopes: []string{libRead}, method: "PUT", path: "/v1/me/library?uris=spotify:album:a1", status: 403, contains: []string{"Insufficient client scope"}},
	{name: "library follow artist with library scope only", scopes: []string{libModify}, method: "PUT", path: "/v1/me/library?uris=spotify:artist:ar1", status: 403, contains: []string{"Insufficient client scope"}},
	{name: "library follow artist", scopes: []string{followMod}, method: "PUT", path: "/v1/me/library?uris=spotify:artist:ar1", status: 200},
	{name: "library follow playlist", scopes: []string{plPublic}, method: "PUT", path: "/v1/me/library?uris=spotify:playlist:pl1", status: 200},
	{name: "library follow playlist with library scope only", scopes: []string{libModify}, method: "PUT", path: "/v1/me/library?uris=spotify:playlist:pl1", status: 403},
	{name: "library 41 URIs", scopes: []string{libModify}, method: "PUT", path: "/v1/me/library?uris=" + uris("track", 41), status: 400},
	{name: "library 40 URIs", scopes: []string{libModify}, method: "PUT", path: "/v1/me/library?uris=" + uris("track", 40), status: 200},
	// An ID Spotify does not know (a release not out yet) is a 400, not a 404.
	{name: "library non-existing ID", scopes: []string{libModify}, setup: notLive("late"), method: "PUT", path: "/v1/me/library?uris=spotify:album:late",
		status: 400, contains: []string{"Payload contains a non-existing ID"}},
	// Check User's Saved Items: the read scope of each kind.
	{name: "library contains artist with library scope only", scopes: []string{libRead}, method: "GET", path: "/v1/me/library/contains?uris=spotify:artist:ar1", status: 403},
	{name: "library contains artist", scopes: []string{followRead}, method: "GET", path: "/v1/me/library/contains?uris=spotify:artist:ar1", status: 200, contains: []string{"[false]"}},
	// Legacy Save Albums (max 20 IDs), Save Tracks and Follow Artists (max 50).
	{name: "legacy albums 21 IDs", scopes: []string{libModify}, method: "PUT", path: "/v1/me/albums?ids=" + ids("a", 21), status: 400, contains: []string{"Too many ids requested"}},
	{name: "legacy albums 20 IDs", scopes: []string{libModify}, method: "PUT", path: "/v1/me/albums?ids=" + ids("a", 20), status: 200},
	{name: "legacy album contains 21 IDs", scopes: []string{libRead}, method: "GET", path: "/v1/me/albums/contains?ids=" + ids("a", 21), status: 400},
	{name: "legacy tracks 51 IDs", scopes: []string{libModify}, method: "PUT", path: "/v1/me/tracks?ids=" + ids("t", 51), status: 400},
	{name: "legacy tracks 50 IDs", scopes: []string{libModify}, method: "PUT", path: "/v1/me/tracks?ids=" + ids("t", 50), status: 200},
	{name: "legacy follow without follow scope", scopes: []string{libModify}, method: "PUT", path: "/v1/me/following?type=artist&ids=ar1", status: 403},
	{name: "legacy non-existing ID", scopes: []string{libModify}, setup: notLive("late"), method: "PUT", path: "/v1/me/albums?ids=late", status: 400, contains: []string{"non-existing ID"}},
	// Add Items to Playlist: only the owner ("You cannot add tracks to a
	// playlist you don't own."); a private playlist needs
	// playlist-modify-private.
	{name: "add to the artist's playlist", scopes: []string{plPublic, plPrivate}, method: "POST", path: "/v1/playlists/artistpl/items", body: `{"uris":["spotify:track:t1"]}`,
		status: 403, contains: []string{"You cannot add tracks to a playlist you don't own."}},
	{name: "add to the artist's playlist (legacy)", scopes: []string{plPublic, plPrivate}, method: "POST", path: "/v1/playlists/artistpl/tracks", body: `{"uris":["spotify:track:t1"]}`, status: 403},
	{name: "add to one's own private playlist", scopes: []string{plPrivate}, setup: createOwn, method: "POST", path: "/v1/playlists/{own}/items", body: `{"uris":["spotify:track:t1"]}`, status: 201, contains: []string{"snapshot_id"}},
	{name: "add to one's own private playlist with the public scope only", scopes: []string{plPublic}, setup: createOwn, method: "POST", path: "/v1/playlists/{own}/items", body: `{"uris":["spotify:track:t1"]}`, status: 403},
	{name: "add 101 items", scopes: []string{plPrivate}, setup: createOwn, method: "POST", path: "/v1/playlists/{own}/items",
		body: `{"uris":["spotify:track:` + strings.Repeat(`t","spotify:track:`, 100) + `t"]}`, status: 400},
	{name: "add a non-existing track", scopes: []string{plPrivate}, setup: func(t *testing.T, c *contractEnv) { createOwn(t, c); notLive("late")(t, c) },
		method: "POST", path: "/v1/playlists/{own}/items", body: `{"uris":["spotify:track:late"]}`, status: 400, contains: []string{"non-existing ID"}},
	// Get Playlist Items: limit 1–50 (default 20); another user's private
	// playlist does not exist for you.
	{name: "playlist items limit 51", scopes: []string{plRead}, method: "GET", path: "/v1/playlists/artistpl/items?limit=51", status: 400},
	{name: "playlist items limit 50", scopes: []string{plRead}, method: "GET", path: "/v1/playlists/artistpl/items?limit=50", status: 200, contains: []string{`"limit":50`}},
	{name: "playlist items default limit", scopes: []string{plRead}, method: "GET", path: "/v1/playlists/artistpl/items", status: 200, contains: []string{`"limit":20`}},
	{name: "another user's private playlist", user: "s-other", scopes: []string{plRead}, setup: func(t *testing.T, c *contractEnv) {
		owner := c.user
		c.user = "s-owner"
		createOwn(t, c)
		c.user = owner
	}, method: "GET", path: "/v1/playlists/{own}/items", status: 404},
	{name: "another user's items in development mode", scopes: []string{plRead}, setup: func(_ *testing.T, c *contractEnv) { c.f.SetLegacyForbidden(true) },
		method: "GET", path: "/v1/playlists/artistpl/items", status: 403},
	// Create Playlist: POST /me/playlists, name required, public by
	// default; a private one needs playlist-modify-private.
	{name: "create private playlist", scopes: []string{plPrivate}, method: "POST", path: "/v1/me/playlists", body: `{"name":"Night Drive","description":"d","public":false}`,
		status: 201, contains: []string{`"public":false`, `"owner":{"id":"{user}"`, `"name":"Night Drive"`}},
	{name: "create private playlist with the public scope only", scopes: []string{plPublic}, method: "POST", path: "/v1/me/playlists", body: `{"name":"x","public":false}`, status: 403},
	{name: "create public playlist by default", scopes: []string{plPrivate}, method: "POST", path: "/v1/me/playlists", body: `{"name":"x"}`, status: 403},
	{name: "create playlist without name", scopes: []string{plPrivate}, method: "POST", path: "/v1/me/playlists", body: `{"public":false}`, status: 400, contains: []string{"name"}},
	{name: "legacy create for another user", scopes: []string{plPrivate}, method: "POST", path: "/v1/users/someone-else/playlists", body: `{"name":"x","public":false}`, status: 403},
	{name: "legacy create for oneself", scopes: []string{plPrivate}, method: "POST", path: "/v1/users/{user}/playlists", body: `{"name":"x","public":false}`, status: 201},
	// Get Current User's Playlists: limit 1–50; private ones need
	// playlist-read-private.
	{name: "my playlists limit 51", scopes: []string{plRead}, method: "GET", path: "/v1/me/playlists?limit=51", status: 400},
	{name: "my private playlist listed", scopes: []string{plRead}, setup: createOwn, method: "GET", path: "/v1/me/playlists?limit=50", status: 200, contains: []string{`"total":1`}},
	{name: "my private playlist hidden without playlist-read-private", scopes: []string{plPrivate}, setup: createOwn, method: "GET", path: "/v1/me/playlists", status: 200, contains: []string{`"total":0`}},
	// Follow Playlist (legacy): body {"public": bool}; a private follow
	// needs playlist-modify-private.
	{name: "follow playlist with a bare boolean body", scopes: []string{plPrivate}, method: "PUT", path: "/v1/playlists/artistpl/followers", body: `false`, status: 400},
	{name: "follow playlist privately", scopes: []string{plPrivate}, method: "PUT", path: "/v1/playlists/artistpl/followers", body: `{"public":false}`, status: 200},
	{name: "follow playlist publicly with the private scope only", scopes: []string{plPrivate}, method: "PUT", path: "/v1/playlists/artistpl/followers", body: `{"public":true}`, status: 403},
	{name: "follows playlist contains", scopes: []string{plRead}, method: "GET", path: "/v1/playlists/artistpl/followers/contains?ids={user}", status: 200, contains: []string{"[false]"}},
	// Rate limits: "429 … Retry-After header".
	{name: "rate limited", scopes: []string{libRead}, setup: func(_ *testing.T, c *contractEnv) {
		c.f.SetRateLimit(providers.Spotify, 0.5, 1)
		c.do(http.MethodGet, "/v1/me/library/contains?uris=spotify:album:a1", "", c.tok)
	}, method: "GET", path: "/v1/me/library/contains?uris=spotify:album:a1", status: 429, header: map[string]string{"Retry-After": "2"}},
}

var youtubeContracts = []contract{
	// Errors table: rate limits are 403 rateLimitExceeded (usageLimits)
	// without Retry-After.
	{name: "rate limited", setup: func(_ *testing.T, c *contractEnv) {
		c.f.SetRateLimit(providers.YouTube, 0.5, 1)
		c.do(http.MethodGet, "/youtube/v3/videos/getRating?id=v1", "", c.tok)
	}, method: "GET", path: "/youtube/v3/videos/getRating?id=v1", status: 403,
		contains: []string{`"reason":"rateLimitExceeded"`, `"domain":"usageLimits"`}, header: map[string]string{"Retry-After": ""}},
	// 401 youtubeSignupRequired: a Google account without a channel.
	{name: "no channel", setup: func(_ *testing.T, c *contractEnv) { c.f.SetNoChannel(c.user) }, method: "GET", path: "/youtube/v3/videos/getRating?id=v1",
		status: 401, contains: []string{"youtubeSignupRequired"}},
	{name: "without the youtube scope", scopes: []string{"openid"}, method: "GET", path: "/youtube/v3/videos/getRating?id=v1", status: 403, contains: []string{"insufficientPermissions"}},
	// playlistItems.insert: only into one's own playlist.
	{name: "insert into the artist's playlist", method: "POST", path: "/youtube/v3/playlistItems?part=snippet",
		body:   `{"snippet":{"playlistId":"PLartist000000000000","resourceId":{"kind":"youtube#video","videoId":"v1"}}}`,
		status: 403, contains: []string{"playlistItemsNotAccessible"}},
	{name: "insert into an uploads playlist", method: "POST", path: "/youtube/v3/playlistItems?part=snippet",
		body:   `{"snippet":{"playlistId":"UUartist0000000000000000","resourceId":{"kind":"youtube#video","videoId":"v1"}}}`,
		status: 400, contains: []string{"playlistOperationUnsupported"}},
	{name: "insert into one's own playlist", setup: createOwn, method: "POST", path: "/youtube/v3/playlistItems?part=snippet",
		body:   `{"snippet":{"playlistId":"{own}","resourceId":{"kind":"youtube#video","videoId":"v1"}}}`,
		status: 200, contains: []string{`"videoId":"v1"`}},
	{name: "insert a video not out yet", setup: func(t *testing.T, c *contractEnv) { createOwn(t, c); notLive("late")(t, c) }, method: "POST", path: "/youtube/v3/playlistItems?part=snippet",
		body:   `{"snippet":{"playlistId":"{own}","resourceId":{"kind":"youtube#video","videoId":"late"}}}`,
		status: 404, contains: []string{"videoNotFound"}},
	// playlists.insert: title required, private by default.
	{name: "create playlist", method: "POST", path: "/youtube/v3/playlists?part=snippet,status",
		body: `{"snippet":{"title":"Night Drive","description":"d"},"status":{"privacyStatus":"private"}}`, status: 200,
		contains: []string{`"privacyStatus":"private"`, `"title":"Night Drive"`}},
	{name: "create playlist without title", method: "POST", path: "/youtube/v3/playlists?part=snippet,status", body: `{"snippet":{}}`, status: 400, contains: []string{"playlistTitleRequired"}},
	{name: "create playlist with < in the title", method: "POST", path: "/youtube/v3/playlists?part=snippet", body: `{"snippet":{"title":"a<b"}}`, status: 400, contains: []string{"invalidPlaylistSnippet"}},
	{name: "list my playlists", setup: createOwn, method: "GET", path: "/youtube/v3/playlists?part=snippet&mine=true&maxResults=50", status: 200, contains: []string{`"totalResults":1`}},
	{name: "list playlists maxResults 51", method: "GET", path: "/youtube/v3/playlists?part=snippet&mine=true&maxResults=51", status: 400},
	// subscriptions.insert and list.
	{name: "subscribe", method: "POST", path: "/youtube/v3/subscriptions?part=snippet",
		body: `{"snippet":{"resourceId":{"kind":"youtube#channel","channelId":"UCartist0000000000000000"}}}`, status: 200},
	{name: "subscribe twice", setup: func(_ *testing.T, c *contractEnv) {
		c.do(http.MethodPost, "/youtube/v3/subscriptions?part=snippet", `{"snippet":{"resourceId":{"kind":"youtube#channel","channelId":"UCartist0000000000000000"}}}`, c.tok)
	}, method: "POST", path: "/youtube/v3/subscriptions?part=snippet",
		body: `{"snippet":{"resourceId":{"kind":"youtube#channel","channelId":"UCartist0000000000000000"}}}`, status: 400, contains: []string{"subscriptionDuplicate"}},
	{name: "subscribe to a channel that does not exist", setup: notLive("UCnone000000000000000000"), method: "POST", path: "/youtube/v3/subscriptions?part=snippet",
		body: `{"snippet":{"resourceId":{"kind":"youtube#channel","channelId":"UCnone000000000000000000"}}}`, status: 404, contains: []string{"publisherNotFound"}},
	{name: "subscriptions for a channel", method: "GET", path: "/youtube/v3/subscriptions?part=id&mine=true&forChannelId=UCartist0000000000000000", status: 200, contains: []string{`"items":[]`}},
}

func TestSpotifyContracts(t *testing.T) { runContracts(t, providers.Spotify, spotifyContracts) }
func TestYouTubeContracts(t *testing.T) { runContracts(t, providers.YouTube, youtubeContracts) }

func runContracts(t *testing.T, p providers.Name, cases []contract) {
	t.Parallel()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &contractEnv{t: t, now: time.Now()}
			c.f = fake.New(fake.Options{Now: c.clock})
			c.srv = httptest.NewServer(c.f)
			t.Cleanup(c.srv.Close)
			c.user = tc.user
			if c.user == "" {
				c.user = fmt.Sprintf("%c-user-%d", map[providers.Name]rune{providers.Spotify: 's', providers.YouTube: 'g'}[p], i)
			}
			scopes := tc.scopes
			if scopes == nil && p == providers.YouTube {
				scopes = []string{"openid", ytScope}
			}
			c.tok = c.grant(p, c.user, scopes)["access_token"].(string)
			if tc.setup != nil {
				tc.setup(t, c)
			}
			fill := strings.NewReplacer("{user}", c.user, "{own}", c.own)
			resp, body := c.do(tc.method, fill.Replace(tc.path), fill.Replace(tc.body), c.tok)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: HTTP %d %s, want %d", tc.method, tc.path, resp.StatusCode, body, tc.status)
			}
			for _, want := range tc.contains {
				if !strings.Contains(body, fill.Replace(want)) {
					t.Errorf("answer %s lacks %q", body, want)
				}
			}
			for k, v := range tc.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if resp.StatusCode >= 400 && !isErrorShape(p, body) {
				t.Errorf("error answer is not %s's error shape: %s", p, body)
			}
		})
	}
}

// isErrorShape: Spotify's errors are {"error": {"status", "message"}},
// Google's {"error": {"code", "message", "errors": [{"reason", "domain"}]}}.
func isErrorShape(p providers.Name, body string) bool {
	var e struct {
		Error struct {
			Status  json.RawMessage `json:"status"` // Spotify: the HTTP status; Google: its name
			Code    int             `json:"code"`
			Message string          `json:"message"`
			Errors  []struct {
				Reason string `json:"reason"`
				Domain string `json:"domain"`
			} `json:"errors"`
		} `json:"error"`
	}
	if json.NewDecoder(bytes.NewReader([]byte(body))).Decode(&e) != nil || e.Error.Message == "" {
		return false
	}
	if p == providers.Spotify {
		var status int
		return json.Unmarshal(e.Error.Status, &status) == nil && status != 0
	}
	return e.Error.Code != 0 && len(e.Error.Errors) > 0 && e.Error.Errors[0].Reason != ""
}

// TestTokenContracts: the OAuth servers' answers the clients depend on.
func TestTokenContracts(t *testing.T) {
	t.Parallel()
	c := &contractEnv{t: t, now: time.Date(2026, 8, 31, 12, 0, 0, 0, time.UTC)}
	c.f = fake.New(fake.Options{Now: c.clock})
	c.srv = httptest.NewServer(c.f)
	t.Cleanup(c.srv.Close)
	refresh := func(path, rt string) (int, map[string]any) {
		resp, err := http.PostForm(c.srv.URL+path, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}, "client_secret": {"s"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	// Spotify: a refresh token lives six calendar months from the
	// authorization, refreshed or not; August 31 runs to February 28.
	sp := c.grant(providers.Spotify, "s-six", []string{libRead})["refresh_token"].(string)
	c.advance(24 * time.Hour)
	if st, out := refresh("/api/token", sp); st != 200 {
		t.Fatalf("refresh a day later: %d %v", st, out)
	}
	c.mu.Lock()
	c.now = time.Date(2027, 2, 28, 11, 59, 0, 0, time.UTC)
	c.mu.Unlock()
	if st, out := refresh("/api/token", sp); st != 200 {
		t.Fatalf("refresh a minute before six months: %d %v", st, out)
	}
	c.advance(time.Minute)
	if st, out := refresh("/api/token", sp); st != 400 || out["error"] != "invalid_grant" || out["error_description"] != "Refresh token expired" {
		t.Errorf("refresh at six months: %d %v, want 400 invalid_grant \"Refresh token expired\"", st, out)
	}
	// Google: a revoked refresh token is "Token has been expired or revoked."
	g := c.grant(providers.YouTube, "g-revoked", []string{"openid", ytScope})["refresh_token"].(string)
	c.f.RevokeUser(providers.YouTube, "g-revoked")
	if st, out := refresh("/google/token", g); st != 400 || out["error"] != "invalid_grant" || out["error_description"] != "Token has been expired or revoked." {
		t.Errorf("Google refresh of a revoked grant: %d %v", st, out)
	}
}

// TestYouTubeQuotaCosts: the units each method costs ("Quota cost" on each
// reference page): reads 1, writes 50.
func TestYouTubeQuotaCosts(t *testing.T) {
	t.Parallel()
	c := &contractEnv{t: t, now: time.Now()}
	c.f = fake.New(fake.Options{Now: c.clock})
	c.srv = httptest.NewServer(c.f)
	t.Cleanup(c.srv.Close)
	c.user = "g-quota"
	c.tok = c.grant(providers.YouTube, c.user, []string{"openid", ytScope})["access_token"].(string)
	createOwn(t, c)
	for _, tc := range []struct {
		method, path, body string
		units              int
	}{
		{"GET", "/youtube/v3/videos/getRating?id=v1", "", 1},
		{"POST", "/youtube/v3/videos/rate?id=v1&rating=like", "", 50},
		{"GET", "/youtube/v3/subscriptions?part=id&mine=true&forChannelId=UCartist0000000000000000", "", 1},
		{"POST", "/youtube/v3/subscriptions?part=snippet", `{"snippet":{"resourceId":{"kind":"youtube#channel","channelId":"UCartist0000000000000000"}}}`, 50},
		{"GET", "/youtube/v3/playlists?part=snippet&mine=true", "", 1},
		{"POST", "/youtube/v3/playlists?part=snippet", `{"snippet":{"title":"x"}}`, 50},
		{"GET", "/youtube/v3/playlistItems?part=id&playlistId=" + c.own, "", 1},
		{"POST", "/youtube/v3/playlistItems?part=snippet", `{"snippet":{"playlistId":"` + c.own + `","resourceId":{"kind":"youtube#video","videoId":"v1"}}}`, 50},
	} {
		before := c.f.QuotaUsed("app")
		if resp, body := c.do(tc.method, tc.path, tc.body, c.tok); resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: HTTP %d %s", tc.method, tc.path, resp.StatusCode, body)
		}
		if got := c.f.QuotaUsed("app") - before; got != tc.units {
			t.Errorf("%s %s cost %d units, want %d", tc.method, tc.path, got, tc.units)
		}
	}
}

// TestCatalogueSearchContracts: Spotify's client credentials grant (an
// app token: no user, no refresh token) and "Search for Item" by UPC and
// ISRC, which finds a release only once it is in the catalogue; the app
// token reaches no user endpoint.
func TestCatalogueSearchContracts(t *testing.T) {
	t.Parallel()
	c := &contractEnv{t: t, now: time.Now()}
	c.f = fake.New(fake.Options{Now: c.clock})
	c.srv = httptest.NewServer(c.f)
	t.Cleanup(c.srv.Close)
	appToken := func(form url.Values, basic bool) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, c.srv.URL+"/api/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth("app", "secret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if st, out := appToken(url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}}, false); st != 401 || out["error"] != "invalid_client" {
		t.Errorf("client credentials without a secret: %d %v", st, out)
	}
	st, out := appToken(url.Values{"grant_type": {"client_credentials"}}, true)
	tok, _ := out["access_token"].(string)
	if st != 200 || tok == "" || out["token_type"] != "Bearer" || out["expires_in"] == nil || out["refresh_token"] != nil || out["scope"] != nil {
		t.Fatalf("client credentials: %d %v", st, out)
	}
	if resp, body := c.do(http.MethodGet, "/v1/me/library/contains?uris=spotify:album:a1", "", tok); resp.StatusCode != 401 || !isErrorShape(providers.Spotify, body) {
		t.Errorf("an app token on a user endpoint: HTTP %d %s", resp.StatusCode, body)
	}

	c.f.SetCatalogue("upc", "00602445790074", "4aawyAB9vmqN3uQ7FjRGTy", c.clock().Add(30*time.Minute))
	c.f.SetCatalogue("isrc", "USUM72400001", "3n3Ppam7vgaVa1iaRUc9Lp", c.clock())
	for _, tc := range []struct {
		name, query string
		status      int
		contains    string
	}{
		{"no query", "type=album", 400, "No search query"},
		{"no type", "q=upc:00602445790074", 400, "Missing parameter type"},
		{"bad type", "q=upc:00602445790074&type=song", 400, "Bad search type field"},
		{"limit 11", "q=upc:00602445790074&type=album&limit=11", 400, "Invalid limit"},
		{"UPC not in the catalogue yet", "q=upc:00602445790074&type=album", 200, `"albums":{`},
		{"ISRC found", "q=isrc:USUM72400001&type=track&limit=10", 200, `"uri":"spotify:track:3n3Ppam7vgaVa1iaRUc9Lp"`},
		{"ISRC as an album finds nothing", "q=isrc:USUM72400001&type=album", 200, `"total":0`},
		{"a name finds nothing", "q=Release&type=track", 200, `"total":0`},
	} {
		resp, body := c.do(http.MethodGet, "/v1/search?"+tc.query, "", tok)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: HTTP %d %s, want %d with %q", tc.name, resp.StatusCode, body, tc.status, tc.contains)
		}
		if strings.HasPrefix(tc.name, "UPC not") && !strings.Contains(body, `"total":0`) {
			t.Errorf("%s: found before the release is in the catalogue: %s", tc.name, body)
		}
	}
	c.advance(30 * time.Minute) // the app token lives an hour
	if resp, body := c.do(http.MethodGet, "/v1/search?q=upc:00602445790074&type=album", "", tok); resp.StatusCode != 200 ||
		!strings.Contains(body, `"id":"4aawyAB9vmqN3uQ7FjRGTy"`) || !strings.Contains(body, `"limit":5`) {
		t.Errorf("UPC once in the catalogue: HTTP %d %s", resp.StatusCode, body)
	}
}
