// Package wire holds the JSON shapes of presave's release endpoints,
// once: what the server accepts and answers (internal/api) and what its
// clients send and read (internal/apiclient, the API's tests). It depends
// on nothing of presave's, so a client links no server code.
package wire

import (
	"slices"
	"time"
)

// SpotifyTarget is what a release asks of Spotify.
type SpotifyTarget struct {
	AlbumIDs  []string `json:"album_ids"`
	TrackIDs  []string `json:"track_ids"`
	ArtistIDs []string `json:"artist_ids"`
	// FollowPlaylistID is the artist's playlist fans follow.
	FollowPlaylistID string `json:"follow_playlist_id"`
	// MyPlaylist, when named, has the tracks added to a playlist of the
	// fan's own that presave creates on release day.
	MyPlaylist *MyPlaylist `json:"my_playlist,omitempty"`
	// PlaylistID is refused (playlist_id_retired): a fan's account
	// cannot add to the artist's playlist. Never set in answers.
	PlaylistID *string `json:"playlist_id,omitempty"`
	// UPC names the album and ISRCs the tracks by code, instead of or
	// besides IDs: presave finds their IDs in Spotify's catalogue once,
	// shortly before the release time, and adds them to album_ids and
	// track_ids; the pre-saves wait until then.
	UPC   string   `json:"upc,omitempty"`
	ISRCs []string `json:"isrcs,omitempty"`
	// Resolution is how the codes resolved (answers only).
	Resolution *Resolution `json:"resolution,omitempty"`
}

// Resolution is how a release's codes resolved into catalogue IDs.
type Resolution struct {
	// State: pending (some code not found yet), resolved, or operator
	// (the IDs were set by hand while a code was pending).
	State    string `json:"state"`
	Searches int    `json:"searches"`
	// NextSearch is when a pending code is searched again.
	NextSearch *time.Time `json:"next_search,omitempty"`
	// Found maps each code found ("upc:…", "isrc:…") to its ID and when.
	Found map[string]Resolved `json:"found"`
}

// Resolved is one code's resolution.
type Resolved struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// YouTubeTarget is what a release asks of YouTube.
type YouTubeTarget struct {
	VideoID string `json:"video_id"`
	// ChannelID is the artist's channel fans subscribe to.
	ChannelID string `json:"channel_id"`
	// MyPlaylist, when named, has the video added to a playlist of the
	// fan's own that presave creates on release day.
	MyPlaylist *MyPlaylist `json:"my_playlist,omitempty"`
	// PlaylistID is refused (playlist_id_retired), as for Spotify.
	PlaylistID *string `json:"playlist_id,omitempty"`
}

// AppleMusicTarget is what a release asks of Apple Music.
type AppleMusicTarget struct {
	// AlbumIDs and SongIDs are Apple Music catalogue IDs (digits).
	AlbumIDs []string `json:"album_ids"`
	SongIDs  []string `json:"song_ids"`
	// ByCodes looks the release's UPC and ISRCs (spotify.upc,
	// spotify.isrcs: the label's codes) up in each fan's storefront, once
	// per storefront, instead of or besides the IDs.
	ByCodes bool `json:"by_codes"`
	// MyPlaylist, when named, has the songs added to a playlist of the
	// fan's own that presave creates on release day.
	MyPlaylist *MyPlaylist `json:"my_playlist,omitempty"`
}

// MyPlaylist is how the playlist presave creates in each fan's account
// is named and described.
type MyPlaylist struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// ReleaseCreate is the body of POST /v1/releases. Exactly one of
// release_at (fixed timing, RFC 3339) and release_date (+ default_zone;
// local timing: midnight in each fan's zone) is given. Times are strings
// so the server can refuse a malformed one with its own error.
type ReleaseCreate struct {
	Slug        string            `json:"slug"`
	Title       string            `json:"title"`
	Artist      string            `json:"artist"`
	ReleaseAt   *string           `json:"release_at"`
	ReleaseDate *string           `json:"release_date"`
	DefaultZone *string           `json:"default_zone"`
	Spotify     *SpotifyTarget    `json:"spotify"`
	YouTube     *YouTubeTarget    `json:"youtube"`
	AppleMusic  *AppleMusicTarget `json:"applemusic"`
	// CanaryFans are fan IDs (the fan_id of a fan's export) of the
	// artist team's own accounts, whose pre-saves run first in the
	// release's canary.
	CanaryFans []string `json:"canary_fans"`
}

// Release is a release as the API shows it.
type Release struct {
	ID          string           `json:"id"`
	Slug        string           `json:"slug"`
	Title       string           `json:"title"`
	Artist      string           `json:"artist"`
	Timing      string           `json:"timing"` // fixed | local
	ReleaseAt   *time.Time       `json:"release_at,omitempty"`
	ReleaseDate string           `json:"release_date,omitempty"`
	DefaultZone string           `json:"default_zone,omitempty"`
	Spotify     SpotifyTarget    `json:"spotify"`
	YouTube     YouTubeTarget    `json:"youtube"`
	AppleMusic  AppleMusicTarget `json:"applemusic"`
	// Actions are what the release offers, by provider ("spotify",
	// "youtube", "applemusic").
	Actions    map[string][]string `json:"actions"`
	CanaryFans []string            `json:"canary_fans"`
	Status     string              `json:"status"`
	CreatedAt  time.Time           `json:"created_at"`
	UpdatedAt  time.Time           `json:"updated_at"`
	// Counts: pre-saves by provider and status, every one present (single
	// release answers).
	Counts map[string]map[string]int `json:"counts,omitempty"`
	// Rescheduled: pre-saves moved by this update (PATCH only).
	Rescheduled *int `json:"rescheduled,omitempty"`
	// NeedsReconnect: pre-saves this update left needs_reconnect
	// (PATCH with accept_undeliverable only).
	NeedsReconnect *int `json:"needs_reconnect,omitempty"`
	// Guards: the campaign guard by provider (single-release answers).
	Guards map[string]Guard `json:"guards,omitempty"`
	// Resumed: by provider resumed, the held pre-saves that run again
	// (POST /resume only).
	Resumed map[string]int `json:"resumed,omitempty"`
	// Warnings: what the configured provider apps will not serve of the
	// release (single-release answers; absent when none).
	Warnings []Warning `json:"warnings,omitempty"`
}

// Warning is something about a release the configured provider apps will
// not serve in full (a user cap, a grant lifetime shorter than the wait,
// quota days); it refuses nothing.
type Warning struct {
	Provider string `json:"provider"`
	// Code: app_user_cap, app_full, grant_lifetime or quota_days.
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Guard is where a release's campaign guard stands for one provider.
type Guard struct {
	// State: canary (only the canary runs), open (the drain runs, the
	// circuit breaker watches) or paused.
	State string `json:"state"`
	// Canary is how many pre-saves the canary holds (0 until the release
	// comes due and it is chosen).
	Canary   int        `json:"canary"`
	OpenedAt *time.Time `json:"opened_at,omitempty"`
	// Pause says why it paused (paused only).
	Pause *GuardPause `json:"pause,omitempty"`
}

// GuardPause is why a guard paused: by the canary or the circuit
// breaker, the action and the error it saw, and on how many of the
// pre-saves it looked at.
type GuardPause struct {
	At     time.Time `json:"at"`
	Cause  string    `json:"cause"` // canary | breaker
	Action string    `json:"action"`
	Error  string    `json:"error"`
	Failed int       `json:"failed"`
	Seen   int       `json:"seen"`
}

// Resume is the optional body of POST /v1/releases/{id}/resume: one
// provider to resume, or every paused one when empty.
type Resume struct {
	Provider string `json:"provider"`
}

// Total counts the release's pre-saves in the given statuses (all of them
// when none is given), over every provider.
func (r Release) Total(statuses ...string) int {
	n := 0
	for _, byStatus := range r.Counts {
		for st, c := range byStatus {
			if len(statuses) == 0 || slices.Contains(statuses, st) {
				n += c
			}
		}
	}
	return n
}

// Time is t as a release_at value (RFC 3339, UTC), for ReleaseCreate.
func Time(t time.Time) *string {
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// Text is s as an optional field value, for ReleaseCreate.
func Text(s string) *string { return &s }

// Plan is the answer of GET /v1/releases/{id}/plan: what the release's
// open pre-saves will take, by provider ("spotify", "youtube").
type Plan struct {
	ReleaseID string                  `json:"release_id"`
	AsOf      time.Time               `json:"as_of"`
	Providers map[string]ProviderPlan `json:"providers"`
	// Warnings: the release's app warnings and what its open pre-saves
	// add (every one present; empty when none).
	Warnings []Warning `json:"warnings"`
}

// ProviderPlan is one provider's part of a Plan.
type ProviderPlan struct {
	// Presaves open (pending, enqueued or running).
	Presaves int `json:"presaves"`
	// Actions without a result yet, by action.
	Actions map[string]int `json:"actions"`
	// Calls: provider requests at most; at RatePerSecond (0: unlimited)
	// they take DrainSeconds.
	Calls         int     `json:"calls"`
	RatePerSecond float64 `json:"rate_per_second"`
	DrainSeconds  float64 `json:"drain_seconds"`
	// Units of the provider's daily quota at most (YouTube), against
	// DailyUnits a quota day: QuotaDays full days.
	Units      int `json:"units"`
	DailyUnits int `json:"daily_units"`
	QuotaDays  int `json:"quota_days"`
	// Undeliverable: open pre-saves whose grant expires before they are
	// due, or that have none.
	Undeliverable int `json:"undeliverable"`
	// Resolved is false while the release's codes are not all found in
	// the catalogue.
	Resolved bool `json:"resolved"`
}
