package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
)

// TestMalformedRequestsAreRefusedWithoutWriting sends bad input of every
// kind: each gets its 4xx and error code in the one error shape, never a
// 5xx, and leaves every table exactly as it was.
func TestMalformedRequestsAreRefusedWithoutWriting(t *testing.T) {
	t.Parallel()
	b := setup(t)
	existing := b.createRelease(releaseBody("existing", time.Now().Add(time.Hour)))
	ytOnly := releaseBody("youtube-only", time.Now().Add(time.Hour))
	delete(ytOnly, "spotify")
	delete(ytOnly, "applemusic")
	ytRel := b.createRelease(ytOnly)
	fan := b.connect(providers.YouTube, existing.Slug, "", "")

	future := time.Now().Add(24 * time.Hour)
	// release returns a valid release body changed by edit.
	release := func(edit func(m map[string]any)) map[string]any {
		m := releaseBody("new-release", future)
		m["spotify"] = maps.Clone(m["spotify"].(map[string]any))
		m["youtube"] = maps.Clone(m["youtube"].(map[string]any))
		edit(m)
		return m
	}
	sp := func(m map[string]any) map[string]any { return m["spotify"].(map[string]any) }
	yt := func(m map[string]any) map[string]any { return m["youtube"].(map[string]any) }
	create := func(body map[string]any) req {
		return req{method: http.MethodPost, path: "/v1/releases", json: body, header: adminHeader()}
	}
	start := func(p string, body map[string]any) req {
		return req{method: http.MethodPost, path: "/v1/connect/" + p + "/start", json: body}
	}
	startBody := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{"release": existing.Slug, "consent": true, "zone": "Europe/Paris"}
		edit(m)
		return m
	}
	oversize := []byte(`{"slug":"x","title":"` + strings.Repeat("a", 70<<10) + `"}`)

	cases := []struct {
		name   string
		r      req
		status int
		code   string
	}{
		// Admin authentication.
		{"no admin token", req{method: http.MethodPost, path: "/v1/releases", json: release(func(map[string]any) {})}, 401, "admin_token_missing"},
		{"wrong admin token", req{method: http.MethodPost, path: "/v1/releases", json: release(func(map[string]any) {}), header: fanHeader("nope")}, 401, "admin_token_invalid"},
		{"basic auth on admin route", req{method: http.MethodGet, path: "/v1/releases", header: map[string]string{"Authorization": "Basic b3BzOm9wcy1wYXNzd29yZA=="}}, 401, "admin_token_missing"},
		{"fan token on admin route", req{method: http.MethodGet, path: "/v1/releases/" + existing.ID, header: fanHeader(fan.FanToken)}, 401, "admin_token_invalid"},
		// Body format.
		{"text/plain body", req{method: http.MethodPost, path: "/v1/releases", body: []byte(`{}`), contentType: "text/plain", header: adminHeader()}, 415, "unsupported_media_type"},
		{"no content type", req{method: http.MethodPost, path: "/v1/releases", body: []byte(`{}`), header: adminHeader()}, 415, "unsupported_media_type"},
		{"not JSON", req{method: http.MethodPost, path: "/v1/releases", body: []byte(`{"slug":`), contentType: "application/json", header: adminHeader()}, 400, "invalid_json"},
		{"empty body", req{method: http.MethodPost, path: "/v1/releases", body: []byte{}, contentType: "application/json", header: adminHeader()}, 400, "invalid_json"},
		{"two objects", req{method: http.MethodPost, path: "/v1/releases", body: []byte(`{} {}`), contentType: "application/json", header: adminHeader()}, 400, "invalid_json"},
		{"array body", req{method: http.MethodPost, path: "/v1/releases", body: []byte(`[]`), contentType: "application/json", header: adminHeader()}, 400, "invalid_json"},
		{"wrong field type", create(release(func(m map[string]any) { m["title"] = 5 })), 400, "invalid_json"},
		{"unknown field", create(release(func(m map[string]any) { m["colour"] = "red" })), 400, "unknown_field"},
		{"unknown nested field", create(release(func(m map[string]any) { sp(m)["album"] = spAlbum })), 400, "unknown_field"},
		{"oversize body", req{method: http.MethodPost, path: "/v1/releases", body: oversize, contentType: "application/json", header: adminHeader()}, 413, "body_too_large"},
		// Release fields.
		{"slug with space", create(release(func(m map[string]any) { m["slug"] = "Bad Slug" })), 400, "invalid_slug"},
		{"slug too long", create(release(func(m map[string]any) { m["slug"] = strings.Repeat("a", 101) })), 400, "invalid_slug"},
		{"slug double hyphen", create(release(func(m map[string]any) { m["slug"] = "a--b" })), 400, "invalid_slug"},
		{"slug taken", create(release(func(m map[string]any) { m["slug"] = existing.Slug })), 409, "slug_taken"},
		{"empty title", create(release(func(m map[string]any) { m["title"] = "  " })), 400, "invalid_title"},
		{"long artist", create(release(func(m map[string]any) { m["artist"] = strings.Repeat("é", 201) })), 400, "invalid_artist"},
		{"short spotify album ID", create(release(func(m map[string]any) { sp(m)["album_ids"] = []string{spAlbum[:21]} })), 400, "invalid_spotify_id"},
		{"spotify track ID with a hyphen", create(release(func(m map[string]any) { sp(m)["track_ids"] = []string{"11dFghVXANMlKmJXsNCb-l"} })), 400, "invalid_spotify_id"},
		{"spotify artist URI instead of ID", create(release(func(m map[string]any) { sp(m)["artist_ids"] = []string{"spotify:artist:" + spArtist} })), 400, "invalid_spotify_id"},
		{"duplicate spotify ID", create(release(func(m map[string]any) { sp(m)["album_ids"] = []string{spAlbum, spAlbum} })), 400, "duplicate_id"},
		{"bad spotify playlist to follow", create(release(func(m map[string]any) { sp(m)["follow_playlist_id"] = "PL123" })), 400, "invalid_spotify_playlist_id"},
		{"spotify playlist_id retired", create(release(func(m map[string]any) { sp(m)["playlist_id"] = spPlaylist })), 400, "playlist_id_retired"},
		{"spotify my playlist without tracks", create(release(func(m map[string]any) { delete(sp(m), "track_ids") })), 400, "playlist_needs_tracks"},
		{"spotify my playlist without a name", create(release(func(m map[string]any) { sp(m)["my_playlist"] = map[string]any{"description": "d"} })), 400, "invalid_my_playlist"},
		{"spotify my playlist name too long", create(release(func(m map[string]any) { sp(m)["my_playlist"] = map[string]any{"name": strings.Repeat("n", 101)} })), 400, "invalid_my_playlist"},
		{"spotify my playlist description with <", create(release(func(m map[string]any) { sp(m)["my_playlist"] = map[string]any{"name": "n", "description": "<b>"} })), 400, "invalid_my_playlist"},
		{"youtube video ID too short", create(release(func(m map[string]any) { yt(m)["video_id"] = "dQw4w9WgXc" })), 400, "invalid_youtube_video_id"},
		{"youtube video ID bad char", create(release(func(m map[string]any) { yt(m)["video_id"] = "dQw4w9WgX!Q" })), 400, "invalid_youtube_video_id"},
		{"youtube playlist_id retired", create(release(func(m map[string]any) { yt(m)["playlist_id"] = "PL" + strings.Repeat("a", 32) })), 400, "playlist_id_retired"},
		{"youtube uploads playlist", create(release(func(m map[string]any) { yt(m)["playlist_id"] = "UU" + strings.Repeat("a", 22) })), 400, "playlist_id_retired"},
		{"youtube channel handle", create(release(func(m map[string]any) { yt(m)["channel_id"] = "@theartist" })), 400, "invalid_youtube_channel_id"},
		{"youtube channel too short", create(release(func(m map[string]any) { yt(m)["channel_id"] = "UCabc" })), 400, "invalid_youtube_channel_id"},
		{"youtube my playlist without video", create(release(func(m map[string]any) { delete(yt(m), "video_id") })), 400, "playlist_needs_video"},
		{"youtube my playlist name with >", create(release(func(m map[string]any) { yt(m)["my_playlist"] = map[string]any{"name": "a>b"} })), 400, "invalid_my_playlist"},
		{"no targets", create(release(func(m map[string]any) { delete(m, "spotify"); delete(m, "youtube"); delete(m, "applemusic") })), 400, "no_targets"},
		{"empty targets", create(release(func(m map[string]any) {
			m["spotify"], m["youtube"], m["applemusic"] = map[string]any{}, map[string]any{}, map[string]any{}
		})), 400, "no_targets"},
		// Timing.
		{"release in the past", create(release(func(m map[string]any) { m["release_at"] = time.Now().Add(-time.Minute).Format(time.RFC3339) })), 400, "release_in_past"},
		{"release_at not RFC 3339", create(release(func(m map[string]any) { m["release_at"] = "next friday" })), 400, "invalid_release_at"},
		{"release_at without zone", create(release(func(m map[string]any) { m["release_at"] = "2030-01-01T00:00:00" })), 400, "invalid_release_at"},
		{"no timing", create(release(func(m map[string]any) { delete(m, "release_at") })), 400, "invalid_timing"},
		{"both timings", create(release(func(m map[string]any) { m["release_date"] = "2030-01-01"; m["default_zone"] = "UTC" })), 400, "invalid_timing"},
		{"zone with fixed timing", create(release(func(m map[string]any) { m["default_zone"] = "UTC" })), 400, "invalid_timing"},
		{"release_date in the past", create(release(func(m map[string]any) {
			delete(m, "release_at")
			m["release_date"] = time.Now().AddDate(0, 0, -2).Format("2006-01-02")
			m["default_zone"] = "UTC"
		})), 400, "release_in_past"},
		{"release_date malformed", create(release(func(m map[string]any) {
			delete(m, "release_at")
			m["release_date"] = "2030-13-01"
			m["default_zone"] = "UTC"
		})), 400, "invalid_release_date"},
		{"release_date without zone", create(release(func(m map[string]any) { delete(m, "release_at"); m["release_date"] = "2030-01-01" })), 400, "invalid_zone"},
		{"unknown zone", create(release(func(m map[string]any) {
			delete(m, "release_at")
			m["release_date"] = "2030-01-01"
			m["default_zone"] = "Mars/Olympus_Mons"
		})), 400, "invalid_zone"},
		{"Local zone", create(release(func(m map[string]any) {
			delete(m, "release_at")
			m["release_date"] = "2030-01-01"
			m["default_zone"] = "Local"
		})), 400, "invalid_zone"},
		{"zone path trick", create(release(func(m map[string]any) {
			delete(m, "release_at")
			m["release_date"] = "2030-01-01"
			m["default_zone"] = "../../etc/passwd"
		})), 400, "invalid_zone"},
		// Reading, listing, updating.
		{"list limit 0", req{method: http.MethodGet, path: "/v1/releases?limit=0", header: adminHeader()}, 400, "invalid_limit"},
		{"list limit words", req{method: http.MethodGet, path: "/v1/releases?limit=many", header: adminHeader()}, 400, "invalid_limit"},
		{"list bad cursor", req{method: http.MethodGet, path: "/v1/releases?after=yesterday", header: adminHeader()}, 400, "invalid_cursor"},
		{"release ID not a UUID", req{method: http.MethodGet, path: "/v1/releases/not-a-uuid", header: adminHeader()}, 404, "release_not_found"},
		{"unknown release", req{method: http.MethodGet, path: "/v1/releases/" + uuid.NewString(), header: adminHeader()}, 404, "release_not_found"},
		{"cancel unknown release", req{method: http.MethodPost, path: "/v1/releases/" + uuid.NewString() + "/cancel", header: adminHeader()}, 404, "release_not_found"},
		{"patch unknown field", req{method: http.MethodPatch, path: "/v1/releases/" + existing.ID, json: map[string]any{"status": "released"}, header: adminHeader()}, 400, "unknown_field"},
		{"patch bad video", req{method: http.MethodPatch, path: "/v1/releases/" + existing.ID, json: map[string]any{"youtube": map[string]any{"video_id": "x"}}, header: adminHeader()}, 400, "invalid_youtube_video_id"},
		{"patch into the past", req{method: http.MethodPatch, path: "/v1/releases/" + existing.ID, json: map[string]any{"release_at": "2020-01-01T00:00:00Z"}, header: adminHeader()}, 400, "release_in_past"},
		{"patch removes every target", req{method: http.MethodPatch, path: "/v1/releases/" + ytRel.ID, json: map[string]any{"youtube": map[string]any{"video_id": "", "channel_id": "", "my_playlist": map[string]any{"name": ""}}}, header: adminHeader()}, 400, "no_targets"},
		{"patch wrong content type", req{method: http.MethodPatch, path: "/v1/releases/" + existing.ID, body: []byte(`title=x`), contentType: "application/x-www-form-urlencoded", header: adminHeader()}, 415, "unsupported_media_type"},
		// Routing.
		{"unknown path", req{method: http.MethodGet, path: "/v2/nothing"}, 404, "not_found"},
		{"wrong method", req{method: http.MethodPut, path: "/healthz"}, 405, "method_not_allowed"},
		// Connect: start.
		{"unknown provider", start("myspace", startBody(func(map[string]any) {})), 404, "unknown_provider"},
		{"consent false", start("spotify", startBody(func(m map[string]any) { m["consent"] = false })), 400, "consent_required"},
		{"consent missing", start("spotify", startBody(func(m map[string]any) { delete(m, "consent") })), 400, "consent_required"},
		{"consent as string", start("spotify", startBody(func(m map[string]any) { m["consent"] = "yes" })), 400, "invalid_json"},
		{"old consent version", start("spotify", startBody(func(m map[string]any) { m["consent_version"] = "2019-v0" })), 400, "consent_version_unknown"},
		{"no release", start("spotify", startBody(func(m map[string]any) { delete(m, "release") })), 400, "release_required"},
		{"unknown release slug", start("spotify", startBody(func(m map[string]any) { m["release"] = "no-such-release" })), 404, "release_not_found"},
		{"release ref garbage", start("spotify", startBody(func(m map[string]any) { m["release"] = "'; DROP TABLE fans; --" })), 404, "release_not_found"},
		{"provider not offered", start("spotify", startBody(func(m map[string]any) { m["release"] = ytRel.Slug })), 400, "provider_not_offered"},
		{"action of another provider", start("spotify", startBody(func(m map[string]any) { m["actions"] = []string{"like"} })), 400, "action_not_offered"},
		{"unknown action", start("youtube", startBody(func(m map[string]any) { m["actions"] = []string{"like", "dislike"} })), 400, "action_not_offered"},
		{"retired action", start("spotify", startBody(func(m map[string]any) { m["actions"] = []string{"save", "playlist"} })), 400, "action_not_offered"},
		{"bad fan zone", start("youtube", startBody(func(m map[string]any) { m["zone"] = "Europe/Atlantis" })), 400, "invalid_zone"},
		{"fan zone too long", start("youtube", startBody(func(m map[string]any) { m["zone"] = strings.Repeat("A", 100) })), 400, "invalid_zone"},
		{"start unknown field", start("youtube", startBody(func(m map[string]any) { m["email"] = "fan@example.com" })), 400, "unknown_field"},
		{"start text/plain", req{method: http.MethodPost, path: "/v1/connect/youtube/start", body: []byte(`{"consent":true}`), contentType: "text/plain"}, 415, "unsupported_media_type"},
		{"start oversize", req{method: http.MethodPost, path: "/v1/connect/youtube/start", body: oversize, contentType: "application/json"}, 413, "body_too_large"},
		{"start link", req{method: http.MethodGet, path: "/v1/connect/youtube/start?release=" + existing.Slug + "&consent=1"}, 405, "method_not_allowed"},
		{"start link without release", req{method: http.MethodGet, path: "/v1/connect/youtube/start"}, 400, "release_required"},
		{"start link with NUL", req{method: http.MethodGet, path: "/v1/connect/youtube/start?release=a%00b"}, 400, "invalid_text"},
		{"start link with invalid UTF-8", req{method: http.MethodGet, path: "/v1/connect/youtube/start?release=a%FFb"}, 400, "invalid_text"},
		// Connect: callback.
		{"callback without state", req{method: http.MethodGet, path: "/connect/spotify/callback?code=abc"}, 400, "state_invalid"},
		{"callback forged state", req{method: http.MethodGet, path: "/connect/youtube/callback?code=abc&state=forged"}, 400, "state_invalid"},
		{"callback of unknown provider", req{method: http.MethodGet, path: "/connect/myspace/callback?code=abc&state=x"}, 404, "not_found"},
		// Fan self-service.
		{"export without token", req{method: http.MethodGet, path: "/v1/me"}, 401, "fan_token_missing"},
		{"export with unknown token", req{method: http.MethodGet, path: "/v1/me", header: fanHeader("unknown-token")}, 401, "fan_token_invalid"},
		{"export with unknown cookie", req{method: http.MethodGet, path: "/v1/me", header: map[string]string{"Cookie": "presave_fan=unknown"}}, 401, "fan_token_invalid"},
		{"export with admin token", req{method: http.MethodGet, path: "/v1/me", header: adminHeader()}, 401, "fan_token_invalid"},
		{"delete account without token", req{method: http.MethodDelete, path: "/v1/me"}, 401, "fan_token_missing"},
		{"withdraw bad ID", req{method: http.MethodDelete, path: "/v1/me/presaves/42", header: fanHeader(fan.FanToken)}, 404, "presave_not_found"},
		{"withdraw unknown ID", req{method: http.MethodDelete, path: "/v1/me/presaves/" + uuid.NewString(), header: fanHeader(fan.FanToken)}, 404, "presave_not_found"},
		{"disconnect unknown provider", req{method: http.MethodDelete, path: "/v1/me/connections/myspace", header: fanHeader(fan.FanToken)}, 404, "unknown_provider"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := b.fingerprint()
			r := b.do(tc.r)
			if r.Status >= 500 {
				t.Fatalf("HTTP %d for bad input: %s", r.Status, r.Body)
			}
			if code := r.errorCode(t); r.Status != tc.status || code != tc.code {
				t.Errorf("HTTP %d %s, want %d %s (%s)", r.Status, code, tc.status, tc.code, r.Body)
			}
			b.sameFingerprint(before, b.fingerprint(), tc.name)
		})
	}
}

// TestOversizeChunkedBodyIsRefused covers a body without Content-Length:
// the limit applies while reading, and still answers 413.
func TestOversizeChunkedBodyIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := b.fingerprint()
	body := io.MultiReader(strings.NewReader(`{"slug":"x","title":"`), strings.NewReader(strings.Repeat("a", 70<<10)), strings.NewReader(`"}`))
	hr, err := http.NewRequestWithContext(b.ctx(), http.MethodPost, b.url+"/v1/releases", body)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := b.hc.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Body: out}
	if hr.ContentLength != 0 || r.Status != http.StatusRequestEntityTooLarge || r.errorCode(t) != "body_too_large" {
		t.Errorf("chunked oversize body: HTTP %d %s", r.Status, r.Body)
	}
	b.sameFingerprint(before, b.fingerprint(), "chunked oversize body")
}

// TestTextPostgreSQLCannotStoreIsRefused puts a NUL character and an
// invalid UTF-8 byte into every text field the API takes, from a client
// (JSON bodies, the page's form, query strings) and from a provider (the
// account ID): each is a 4xx (client) or a 502 (provider) naming the
// field, never a 500, and nothing is written.
func TestTextPostgreSQLCannotStoreIsRefused(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	existing := b.createRelease(releaseBody("text-existing", time.Now().Add(time.Hour)))
	const marker = "MARKER-7f3a"
	bad := map[string]string{"NUL": "a\x00b", "invalid UTF-8": "a\xffb"}
	// body marshals v with marker where the bad text goes, then puts the
	// bad bytes in raw: encoding/json would mend invalid UTF-8 itself.
	body := func(v any, text string) []byte {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		enc := text
		if text == bad["NUL"] {
			enc = `a\u0000b`
		}
		return bytes.Replace(raw, []byte(marker), []byte(enc), 1)
	}
	type field struct {
		name, path  string // the field, and the path the refusal must name
		method, url string
		build       func() map[string]any
		header      map[string]string
	}
	release := func(edit func(m map[string]any)) func() map[string]any {
		return func() map[string]any {
			m := releaseBody("text-new", time.Now().Add(24*time.Hour))
			edit(m)
			return m
		}
	}
	sp := func(m map[string]any) map[string]any { return m["spotify"].(map[string]any) }
	yt := func(m map[string]any) map[string]any { return m["youtube"].(map[string]any) }
	localTiming := func(m map[string]any) {
		delete(m, "release_at")
		m["release_date"], m["default_zone"] = "2031-01-01", "UTC"
	}
	start := func(edit func(m map[string]any)) func() map[string]any {
		return func() map[string]any {
			m := map[string]any{"release": existing.Slug, "consent": true, "zone": "Europe/Paris"}
			edit(m)
			return m
		}
	}
	admin := adminHeader()
	fields := []field{
		{"slug", "slug", http.MethodPost, "/v1/releases", release(func(m map[string]any) { m["slug"] = marker }), admin},
		{"title", "title", http.MethodPost, "/v1/releases", release(func(m map[string]any) { m["title"] = marker }), admin},
		{"artist", "artist", http.MethodPost, "/v1/releases", release(func(m map[string]any) { m["artist"] = marker }), admin},
		{"release_at", "release_at", http.MethodPost, "/v1/releases", release(func(m map[string]any) { m["release_at"] = marker }), admin},
		{"release_date", "release_date", http.MethodPost, "/v1/releases", release(func(m map[string]any) { localTiming(m); m["release_date"] = marker }), admin},
		{"default_zone", "default_zone", http.MethodPost, "/v1/releases", release(func(m map[string]any) { localTiming(m); m["default_zone"] = marker }), admin},
		{"spotify album ID", "spotify.album_ids[0]", http.MethodPost, "/v1/releases", release(func(m map[string]any) { sp(m)["album_ids"] = []string{marker} }), admin},
		{"spotify track ID", "spotify.track_ids[0]", http.MethodPost, "/v1/releases", release(func(m map[string]any) { sp(m)["track_ids"] = []string{marker} }), admin},
		{"spotify artist ID", "spotify.artist_ids[0]", http.MethodPost, "/v1/releases", release(func(m map[string]any) { sp(m)["artist_ids"] = []string{marker} }), admin},
		{"spotify playlist to follow", "spotify.follow_playlist_id", http.MethodPost, "/v1/releases", release(func(m map[string]any) { sp(m)["follow_playlist_id"] = marker }), admin},
		{"spotify my playlist name", "spotify.my_playlist.name", http.MethodPost, "/v1/releases", release(func(m map[string]any) { sp(m)["my_playlist"] = map[string]any{"name": marker} }), admin},
		{"youtube video", "youtube.video_id", http.MethodPost, "/v1/releases", release(func(m map[string]any) { yt(m)["video_id"] = marker }), admin},
		{"youtube channel", "youtube.channel_id", http.MethodPost, "/v1/releases", release(func(m map[string]any) { yt(m)["channel_id"] = marker }), admin},
		{"youtube my playlist description", "youtube.my_playlist.description", http.MethodPost, "/v1/releases", release(func(m map[string]any) { yt(m)["my_playlist"] = map[string]any{"name": "n", "description": marker} }), admin},
		{"patch title", "title", http.MethodPatch, "/v1/releases/" + existing.ID, func() map[string]any { return map[string]any{"title": marker} }, admin},
		{"patch artist", "artist", http.MethodPatch, "/v1/releases/" + existing.ID, func() map[string]any { return map[string]any{"artist": marker} }, admin},
		{"start release", "release", http.MethodPost, "/v1/connect/spotify/start", start(func(m map[string]any) { m["release"] = marker }), nil},
		{"start zone", "zone", http.MethodPost, "/v1/connect/spotify/start", start(func(m map[string]any) { m["zone"] = marker }), nil},
		{"start consent version", "consent_version", http.MethodPost, "/v1/connect/spotify/start", start(func(m map[string]any) { m["consent_version"] = marker }), nil},
		{"start action", "actions[0]", http.MethodPost, "/v1/connect/spotify/start", start(func(m map[string]any) { m["actions"] = []string{marker} }), nil},
	}
	for _, f := range fields {
		for kind, text := range bad {
			t.Run(f.name+" "+kind, func(t *testing.T) {
				before := b.fingerprint()
				r := b.do(req{method: f.method, path: f.url, body: body(f.build(), text), contentType: "application/json", header: f.header})
				if r.Status != http.StatusBadRequest || r.errorCode(t) != "invalid_text" || !strings.Contains(string(r.Body), f.path+" must be") {
					t.Errorf("HTTP %d %s, want 400 invalid_text naming %s", r.Status, r.Body, f.path)
				}
				b.sameFingerprint(before, b.fingerprint(), f.name+" "+kind)
			})
		}
	}

	// The page's form: every field it reads.
	jar := browserJar{}
	tok := csrfOf(t, b.page(jar, http.MethodGet, "/r/text-existing", nil))
	for _, name := range []string{"zone", "consent_version", "provider", "actions_spotify"} {
		for kind, text := range bad {
			t.Run("page form "+name+" "+kind, func(t *testing.T) {
				before := b.fingerprint()
				form := url.Values{"csrf": {tok}, "provider": {"spotify"}, "consent": {"1"}, "choose": {"1"}, "actions_spotify": {"save"}, "zone": {"UTC"}}
				form.Set(name, text)
				r := b.page(jar, http.MethodPost, "/r/text-existing/start", form)
				if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "invalid_text") {
					t.Errorf("HTTP %d %.300s, want 400 invalid_text", r.Status, r.Body)
				}
				b.sameFingerprint(before, b.fingerprint(), "page form "+name)
			})
		}
	}

	// From the provider: an account ID holding NUL (the only one of the
	// two a provider can send: JSON decoding mends invalid UTF-8).
	for _, p := range []providers.Name{providers.Spotify, providers.YouTube} {
		q := b.consent(b.startURL(p, map[string]any{"release": existing.Slug, "consent": true}, ""), "acct\x00nul")
		before := b.fingerprint("oauth_states")
		r := b.callback(p, q, "")
		if r.Status != http.StatusBadGateway || r.errorCode(t) != "provider_invalid_text" || !strings.Contains(string(r.Body), "account ID") {
			t.Errorf("%s account ID with NUL: HTTP %d %s", p, r.Status, r.Body)
		}
		b.sameFingerprint(before, b.fingerprint("oauth_states"), string(p)+" account ID with NUL")
	}
}
