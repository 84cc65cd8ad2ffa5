package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/presave/presave/internal/presave"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/wire"
)

// Identifier formats. A YouTube channel ID is "UC" and 22 characters
// (the channel resource's id; handles and custom URLs are not IDs).
var (
	spotifyIDPattern      = regexp.MustCompile(`^[0-9A-Za-z]{22}$`)
	youtubeVideoPattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{11}$`)
	youtubeChannelPattern = regexp.MustCompile(`^UC[A-Za-z0-9_-]{22}$`)
	// Apple Music catalogue IDs are decimal numbers, e.g. 1577502911.
	appleMusicIDPattern = regexp.MustCompile(`^[1-9][0-9]{0,14}$`)
	// A UPC-A has 12 digits, an EAN-13 13; ISO 3901 ISRCs are CC-XXX-YY-NNNNN
	// written without hyphens.
	upcPattern  = regexp.MustCompile(`^[0-9]{12,13}$`)
	isrcPattern = regexp.MustCompile(`^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$`)
)

// normalizeCode writes a UPC or ISRC as catalogues search it: no spaces
// or hyphens, upper case.
func normalizeCode(s string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(s)))
}

func normalizeCodes(in []string) []string {
	var out []string
	for _, s := range in {
		if c := normalizeCode(s); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// resolutionView shows a release's resolution (nil when it names no code).
func resolutionView(r store.Resolution) *wire.Resolution {
	if r.State == store.ResolutionNone || r.State == "" {
		return nil
	}
	v := &wire.Resolution{State: string(r.State), Searches: r.Attempts, NextSearch: r.NextAt, Found: map[string]wire.Resolved{}}
	for k, f := range r.Found {
		v.Found[k] = wire.Resolved{ID: f.ID, At: f.At}
	}
	return v
}

const (
	maxText    = 200
	maxIDs     = 50 // per list; a Spotify library write takes 50 IDs at most
	dateLayout = "2006-01-02"
	// A playlist's name and description: YouTube takes titles of 150
	// characters and descriptions of 5,000 bytes, neither with < or >;
	// Spotify documents no limit (its apps stop at 100 and 300). The
	// description leaves room for the marker presave appends.
	maxPlaylistName        = 100
	maxPlaylistDescription = 200
)

// releasePatch is the body of PATCH /v1/releases/{id}: absent fields keep
// their value; a list or ID given replaces the old one ("" clears an ID).
type releasePatch struct {
	// AcceptUndeliverable moves the release even when some pre-saves'
	// grants expire before the new time (they become needs_reconnect).
	AcceptUndeliverable bool      `json:"accept_undeliverable"`
	Slug                *string   `json:"slug"`
	Title               *string   `json:"title"`
	Artist              *string   `json:"artist"`
	ReleaseAt           *string   `json:"release_at"`
	ReleaseDate         *string   `json:"release_date"`
	DefaultZone         *string   `json:"default_zone"`
	CanaryFans          *[]string `json:"canary_fans"`
	Spotify             *struct {
		AlbumIDs         *[]string        `json:"album_ids"`
		TrackIDs         *[]string        `json:"track_ids"`
		ArtistIDs        *[]string        `json:"artist_ids"`
		FollowPlaylistID *string          `json:"follow_playlist_id"`
		MyPlaylist       *wire.MyPlaylist `json:"my_playlist"`
		PlaylistID       *string          `json:"playlist_id"`
		UPC              *string          `json:"upc"`
		ISRCs            *[]string        `json:"isrcs"`
	} `json:"spotify"`
	YouTube *struct {
		VideoID    *string          `json:"video_id"`
		ChannelID  *string          `json:"channel_id"`
		MyPlaylist *wire.MyPlaylist `json:"my_playlist"`
		PlaylistID *string          `json:"playlist_id"`
	} `json:"youtube"`
	AppleMusic *struct {
		AlbumIDs   *[]string        `json:"album_ids"`
		SongIDs    *[]string        `json:"song_ids"`
		ByCodes    *bool            `json:"by_codes"`
		MyPlaylist *wire.MyPlaylist `json:"my_playlist"`
	} `json:"applemusic"`
}

// errPlaylistRetired refuses the old playlist_id target.
func errPlaylistRetired(p providers.Name) *Error {
	if p == providers.Spotify {
		return badRequest("playlist_id_retired", "spotify.playlist_id is gone: a fan's account cannot add to a playlist it does not own. Use spotify.follow_playlist_id to have fans follow the playlist, or spotify.my_playlist to add the tracks to a playlist of their own.")
	}
	return badRequest("playlist_id_retired", "youtube.playlist_id is gone: a fan's account cannot add to a playlist it does not own. Use youtube.my_playlist to add the video to a playlist of the fan's own, or youtube.channel_id to have fans subscribe to the channel.")
}

func myPlaylistView(m store.MyPlaylist) *wire.MyPlaylist {
	if m.Name == "" {
		return nil
	}
	return &wire.MyPlaylist{Name: m.Name, Description: m.Description}
}

func myPlaylistOf(m *wire.MyPlaylist) store.MyPlaylist {
	if m == nil {
		return store.MyPlaylist{}
	}
	return store.MyPlaylist{Name: m.Name, Description: m.Description}
}

// ReleaseView is a release as the API shows it.
type ReleaseView = wire.Release

var allStatuses = []store.PresaveStatus{store.PresavePending, store.PresaveEnqueued, store.PresaveRunning, store.PresaveHeld,
	store.PresaveDone, store.PresavePartial, store.PresaveFailed, store.PresaveCancelled, store.PresaveNeedsReconnect}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) releaseView(r store.Release) ReleaseView {
	v := ReleaseView{
		ID: r.ID.String(), Slug: r.Slug, Title: r.Title, Artist: r.Artist, Timing: string(r.Timing), DefaultZone: r.DefaultZone,
		Spotify: wire.SpotifyTarget{AlbumIDs: orEmpty(r.SpotifyAlbumIDs), TrackIDs: orEmpty(r.SpotifyTrackIDs),
			ArtistIDs: orEmpty(r.SpotifyArtistIDs), FollowPlaylistID: r.SpotifyFollowPlaylistID,
			MyPlaylist: myPlaylistView(r.SpotifyMyPlaylist), UPC: r.SpotifyUPC, ISRCs: r.SpotifyISRCs,
			Resolution: resolutionView(r.SpotifyResolution)},
		YouTube: wire.YouTubeTarget{VideoID: r.YouTubeVideoID, ChannelID: r.YouTubeChannelID,
			MyPlaylist: myPlaylistView(r.YouTubeMyPlaylist)},
		AppleMusic: wire.AppleMusicTarget{AlbumIDs: orEmpty(r.AppleMusicAlbumIDs), SongIDs: orEmpty(r.AppleMusicSongIDs),
			ByCodes: r.AppleMusicByCodes, MyPlaylist: myPlaylistView(r.AppleMusicMyPlaylist)},
		Actions:    map[string][]string{},
		CanaryFans: []string{},
		Status:     string(r.Status),
		CreatedAt:  r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	for _, id := range r.CanaryFans {
		v.CanaryFans = append(v.CanaryFans, id.String())
	}
	if r.Timing == store.TimingFixed {
		at := r.ReleaseAt
		v.ReleaseAt = &at
	} else {
		v.ReleaseDate = r.ReleaseDate.Format(dateLayout)
	}
	for _, n := range providers.Names {
		acts := []string{}
		if p, ok := s.providers.Get(n); ok {
			for _, a := range p.Actions(r.Target(n)) {
				acts = append(acts, string(a))
			}
		}
		v.Actions[string(n)] = acts
	}
	if r.Status == store.ReleaseScheduled {
		if ws := s.app.AppWarnings(r); len(ws) > 0 {
			v.Warnings = warningsView(ws)
		}
	}
	return v
}

// warningsView is the wire form of ws, never nil.
func warningsView(ws []presave.Warning) []wire.Warning {
	out := make([]wire.Warning, 0, len(ws))
	for _, w := range ws {
		out = append(out, wire.Warning{Provider: string(w.Provider), Code: w.Code, Message: w.Message})
	}
	return out
}

// withState adds the release's pre-save counts, every provider and
// status present (zero included) so clients need no defaults, and its
// campaign guards.
func (s *Server) withState(ctx context.Context, id uuid.UUID, v ReleaseView) (ReleaseView, error) {
	counts, err := s.store.ReleaseCounts(ctx, id)
	if err != nil {
		return v, err
	}
	guards, err := s.store.ReleaseGuards(ctx, id)
	if err != nil {
		return v, err
	}
	v.Guards = map[string]wire.Guard{}
	for _, g := range guards {
		wg := wire.Guard{State: string(g.State), Canary: len(g.Canary), OpenedAt: g.OpenedAt}
		if p := g.Pause; p != nil {
			wg.Pause = &wire.GuardPause{At: p.At, Cause: p.Cause, Action: string(p.Action), Error: p.Error, Failed: p.Failed, Seen: p.Seen}
		}
		v.Guards[string(g.Provider)] = wg
	}
	v.Counts = map[string]map[string]int{}
	for _, n := range providers.Names {
		m := map[string]int{}
		for _, st := range allStatuses {
			m[string(st)] = counts[n][string(st)]
		}
		v.Counts[string(n)] = m
	}
	return v, nil
}

func badRequest(code, format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, code, format, args...)
}

func parseReleaseAt(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, badRequest("invalid_release_at", "release_at must be an RFC 3339 time such as 2026-12-04T00:00:00Z.")
	}
	return t.UTC(), nil
}

func parseReleaseDate(s string) (time.Time, error) {
	d, err := time.Parse(dateLayout, s)
	if err != nil {
		return time.Time{}, badRequest("invalid_release_date", "release_date must be a date such as 2026-12-04.")
	}
	return d, nil
}

func checkText(field, v string) error {
	if strings.TrimSpace(v) == "" || utf8.RuneCountInString(v) > maxText || !utf8.ValidString(v) {
		return badRequest("invalid_"+field, "%s must be 1 to %d characters.", field, maxText)
	}
	return nil
}

func checkIDs(field string, ids []string, pattern *regexp.Regexp, what string) error {
	if len(ids) > maxIDs {
		return badRequest("too_many_ids", "%s holds more than %d IDs.", field, maxIDs)
	}
	seen := map[string]bool{}
	for i, id := range ids {
		if !pattern.MatchString(id) {
			provider, _, _ := strings.Cut(field, ".")
			return badRequest("invalid_"+provider+"_id", "%s[%d] is not %s.", field, i, what)
		}
		if seen[id] {
			return badRequest("duplicate_id", "%s lists %s twice.", field, id)
		}
		seen[id] = true
	}
	return nil
}

// validateRelease checks a complete release. checkTime also demands that
// it goes live in the future (on create, and when an update moves it).
func (s *Server) validateRelease(ctx context.Context, r store.Release, checkTime bool) error {
	if !presave.IsSlug(r.Slug) {
		return badRequest("invalid_slug", "slug must be lower-case letters and digits in words joined by single hyphens, at most %d characters.", presave.MaxSlug)
	}
	if err := checkText("title", r.Title); err != nil {
		return err
	}
	if err := checkText("artist", r.Artist); err != nil {
		return err
	}
	if r.Timing == store.TimingLocal {
		if err := s.app.CheckZone(ctx, "default_zone", r.DefaultZone); err != nil {
			return err
		}
	}
	if checkTime {
		due, err := r.DueAt("")
		if err != nil {
			return badRequest("invalid_zone", "default_zone does not load.")
		}
		if !due.After(s.now()) {
			return badRequest("release_in_past", "The release must go live in the future.")
		}
	}
	const spotifyID = "a Spotify ID (22 letters and digits)"
	if err := checkIDs("spotify.album_ids", r.SpotifyAlbumIDs, spotifyIDPattern, spotifyID); err != nil {
		return err
	}
	if err := checkIDs("spotify.track_ids", r.SpotifyTrackIDs, spotifyIDPattern, spotifyID); err != nil {
		return err
	}
	if err := checkIDs("spotify.artist_ids", r.SpotifyArtistIDs, spotifyIDPattern, spotifyID); err != nil {
		return err
	}
	if r.SpotifyUPC != "" && !upcPattern.MatchString(r.SpotifyUPC) {
		return badRequest("invalid_upc", "spotify.upc is not a UPC or EAN (12 or 13 digits).")
	}
	if len(r.SpotifyISRCs) > maxIDs {
		return badRequest("too_many_ids", "spotify.isrcs has %d codes; at most %d.", len(r.SpotifyISRCs), maxIDs)
	}
	for _, c := range r.SpotifyISRCs {
		if !isrcPattern.MatchString(c) {
			return badRequest("invalid_isrc", "spotify.isrcs: %q is not an ISRC (2 letters, 3 letters or digits, 7 digits, like USRC17607839).", c)
		}
	}
	if r.SpotifyFollowPlaylistID != "" && !spotifyIDPattern.MatchString(r.SpotifyFollowPlaylistID) {
		return badRequest("invalid_spotify_playlist_id", "spotify.follow_playlist_id is not a Spotify playlist ID (22 letters and digits).")
	}
	if err := checkMyPlaylist("spotify", r.SpotifyMyPlaylist); err != nil {
		return err
	}
	if r.SpotifyMyPlaylist.Name != "" && len(r.SpotifyTrackIDs) == 0 && len(r.SpotifyISRCs) == 0 {
		return badRequest("playlist_needs_tracks", "spotify.my_playlist needs spotify.track_ids (or isrcs) to add to it.")
	}
	if r.YouTubeVideoID != "" && !youtubeVideoPattern.MatchString(r.YouTubeVideoID) {
		return badRequest("invalid_youtube_video_id", "youtube.video_id is not a YouTube video ID (11 characters of A-Z, a-z, 0-9, _ and -).")
	}
	if r.YouTubeChannelID != "" && !youtubeChannelPattern.MatchString(r.YouTubeChannelID) {
		return badRequest("invalid_youtube_channel_id", "youtube.channel_id is not a YouTube channel ID (UC followed by 22 characters of A-Z, a-z, 0-9, _ and -; a handle such as @name is not an ID).")
	}
	if err := checkMyPlaylist("youtube", r.YouTubeMyPlaylist); err != nil {
		return err
	}
	if r.YouTubeMyPlaylist.Name != "" && r.YouTubeVideoID == "" {
		return badRequest("playlist_needs_video", "youtube.my_playlist needs youtube.video_id to add to it.")
	}
	if err := checkAppleMusic(r); err != nil {
		return err
	}
	offered := false
	for _, n := range providers.Names {
		if p, ok := s.providers.Get(n); ok && len(p.Actions(r.Target(n))) > 0 {
			offered = true
		}
	}
	if !offered {
		return badRequest("no_targets", "A release needs at least one target: Spotify album, track, artist or playlist IDs (or a UPC or ISRCs), a YouTube video or channel ID, or Apple Music album or song IDs (or by_codes).")
	}
	return s.checkCanaryFans(ctx, r.CanaryFans)
}

// maxCanaryFans bounds canary_fans: the artist team's own accounts.
const maxCanaryFans = 20

// parseCanaryFans reads canary_fans (fan IDs).
func parseCanaryFans(in []string) ([]uuid.UUID, error) {
	if len(in) > maxCanaryFans {
		return nil, badRequest("invalid_canary_fans", "canary_fans names at most %d fans (the artist team's own accounts).", maxCanaryFans)
	}
	out := make([]uuid.UUID, 0, len(in))
	for _, s := range in {
		id, err := uuid.Parse(s)
		if err != nil {
			return nil, badRequest("invalid_canary_fans", "canary_fans: %q is not a fan ID (the fan_id of the fan's export, a UUID).", s)
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// checkCanaryFans refuses canary fans that do not exist.
func (s *Server) checkCanaryFans(ctx context.Context, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	unknown, err := s.store.UnknownFans(ctx, ids)
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		return badRequest("unknown_canary_fan", "canary_fans: no fan has the ID %s (a team member connects and pre-saves like any fan first; their export shows the fan_id).", unknown[0])
	}
	return nil
}

// checkMyPlaylist checks the name and description of the playlist
// presave creates in each fan's account: a description without a name
// names nothing.
// checkAppleMusic checks the release's Apple Music targets.
func checkAppleMusic(r store.Release) error {
	const what = "an Apple Music catalogue ID (digits, such as 1577502911)"
	if err := checkIDs("applemusic.album_ids", r.AppleMusicAlbumIDs, appleMusicIDPattern, what); err != nil {
		return err
	}
	if err := checkIDs("applemusic.song_ids", r.AppleMusicSongIDs, appleMusicIDPattern, what); err != nil {
		return err
	}
	if r.AppleMusicByCodes && r.SpotifyUPC == "" && len(r.SpotifyISRCs) == 0 {
		return badRequest("codes_missing", "applemusic.by_codes needs the release's codes: spotify.upc or spotify.isrcs.")
	}
	if err := checkMyPlaylist("applemusic", r.AppleMusicMyPlaylist); err != nil {
		return err
	}
	if r.AppleMusicMyPlaylist.Name != "" && len(r.AppleMusicAlbumIDs) == 0 && len(r.AppleMusicSongIDs) == 0 && !r.AppleMusicByCodes {
		return badRequest("playlist_needs_songs", "applemusic.my_playlist needs applemusic.album_ids, song_ids or by_codes to add from.")
	}
	return nil
}

func checkMyPlaylist(prefix string, m store.MyPlaylist) error {
	field := prefix + ".my_playlist"
	if m.Name == "" {
		if m.Description != "" {
			return badRequest("invalid_my_playlist", "%s.description needs a %s.name.", field, field)
		}
		return nil
	}
	if strings.TrimSpace(m.Name) == "" || utf8.RuneCountInString(m.Name) > maxPlaylistName || strings.ContainsAny(m.Name, "<>") {
		return badRequest("invalid_my_playlist", "%s.name must be 1 to %d characters, without < or >.", field, maxPlaylistName)
	}
	if utf8.RuneCountInString(m.Description) > maxPlaylistDescription || strings.ContainsAny(m.Description, "<>") {
		return badRequest("invalid_my_playlist", "%s.description must be at most %d characters, without < or >.", field, maxPlaylistDescription)
	}
	return nil
}

// setTiming applies release_at / release_date / default_zone to r.
func setTiming(r *store.Release, at, date, zone *string) error {
	switch {
	case at != nil && date != nil:
		return badRequest("invalid_timing", "Give either release_at (one instant) or release_date with default_zone (midnight in each fan's zone), not both.")
	case at != nil:
		if zone != nil && *zone != "" {
			return badRequest("invalid_timing", "default_zone applies only to a release_date.")
		}
		t, err := parseReleaseAt(*at)
		if err != nil {
			return err
		}
		r.Timing, r.ReleaseAt, r.ReleaseDate, r.DefaultZone = store.TimingFixed, t, time.Time{}, ""
	case date != nil:
		d, err := parseReleaseDate(*date)
		if err != nil {
			return err
		}
		if zone != nil {
			r.DefaultZone = *zone
		} else if r.Timing != store.TimingLocal {
			r.DefaultZone = ""
		}
		if r.DefaultZone == "" {
			return badRequest("invalid_zone", "A release_date needs a default_zone, an IANA time zone name such as Europe/Paris.")
		}
		r.Timing, r.ReleaseDate, r.ReleaseAt = store.TimingLocal, d, time.Time{}
	case zone != nil:
		if r.Timing != store.TimingLocal {
			return badRequest("invalid_timing", "default_zone applies only to a release_date.")
		}
		r.DefaultZone = *zone
	}
	return nil
}

func (s *Server) createRelease(c echo.Context) error {
	var in wire.ReleaseCreate
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.ReleaseAt == nil && in.ReleaseDate == nil {
		return badRequest("invalid_timing", "Give release_at (one instant) or release_date with default_zone (midnight in each fan's zone).")
	}
	r := store.Release{Slug: in.Slug, Title: in.Title, Artist: in.Artist}
	if err := setTiming(&r, in.ReleaseAt, in.ReleaseDate, in.DefaultZone); err != nil {
		return err
	}
	var err error
	if r.CanaryFans, err = parseCanaryFans(in.CanaryFans); err != nil {
		return err
	}
	if in.Spotify != nil {
		if in.Spotify.PlaylistID != nil {
			return errPlaylistRetired(providers.Spotify)
		}
		r.SpotifyAlbumIDs, r.SpotifyTrackIDs, r.SpotifyArtistIDs = in.Spotify.AlbumIDs, in.Spotify.TrackIDs, in.Spotify.ArtistIDs
		r.SpotifyFollowPlaylistID, r.SpotifyMyPlaylist = in.Spotify.FollowPlaylistID, myPlaylistOf(in.Spotify.MyPlaylist)
		r.SpotifyUPC, r.SpotifyISRCs = normalizeCode(in.Spotify.UPC), normalizeCodes(in.Spotify.ISRCs)
	}
	if in.YouTube != nil {
		if in.YouTube.PlaylistID != nil {
			return errPlaylistRetired(providers.YouTube)
		}
		r.YouTubeVideoID, r.YouTubeChannelID = in.YouTube.VideoID, in.YouTube.ChannelID
		r.YouTubeMyPlaylist = myPlaylistOf(in.YouTube.MyPlaylist)
	}
	if am := in.AppleMusic; am != nil {
		r.AppleMusicAlbumIDs, r.AppleMusicSongIDs, r.AppleMusicByCodes = am.AlbumIDs, am.SongIDs, am.ByCodes
		r.AppleMusicMyPlaylist = myPlaylistOf(am.MyPlaylist)
	}
	ctx := ctxOf(c)
	if err := s.validateRelease(ctx, r, true); err != nil {
		return err
	}
	out, err := s.store.CreateRelease(ctx, r)
	if errors.Is(err, store.ErrConflict) {
		return errorf(http.StatusConflict, "slug_taken", "Another release already uses the slug %q.", r.Slug)
	}
	if err != nil {
		return err
	}
	v, err := s.withState(ctx, out.ID, s.releaseView(out))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, v)
}

func (s *Server) listReleases(c echo.Context) error {
	limit := 50
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return badRequest("invalid_limit", "limit must be a number from 1 to 200.")
		}
		limit = n
	}
	after := uuid.Nil
	if v := c.QueryParam("after"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			return badRequest("invalid_cursor", "after must be a release ID from a previous page's next.")
		}
		after = id
	}
	rs, err := s.store.ListReleases(ctxOf(c), after, limit)
	if err != nil {
		return err
	}
	out := struct {
		Releases []ReleaseView `json:"releases"`
		Next     *uuid.UUID    `json:"next"`
	}{Releases: []ReleaseView{}}
	for _, r := range rs {
		out.Releases = append(out.Releases, s.releaseView(r))
	}
	if len(rs) == limit {
		out.Next = &rs[len(rs)-1].ID
	}
	return c.JSON(http.StatusOK, out)
}

var errReleaseNotFound error = presave.ErrReleaseNotFound

// releaseParam reads the release named by the :id path parameter.
func (s *Server) releaseParam(c echo.Context) (store.Release, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return store.Release{}, errReleaseNotFound
	}
	r, err := s.store.Release(ctxOf(c), id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Release{}, errReleaseNotFound
	}
	return r, err
}

func (s *Server) getRelease(c echo.Context) error {
	r, err := s.releaseParam(c)
	if err != nil {
		return err
	}
	v, err := s.withState(ctxOf(c), r.ID, s.releaseView(r))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func releaseNotScheduled(r store.Release) *Error {
	return errorf(http.StatusConflict, "release_not_scheduled", "The release is %s; only a scheduled release can change.", r.Status)
}

func (s *Server) patchRelease(c echo.Context) error {
	old, err := s.releaseParam(c)
	if err != nil {
		return err
	}
	var in releasePatch
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if old.Status != store.ReleaseScheduled {
		return releaseNotScheduled(old)
	}
	r := old
	if in.Slug != nil {
		r.Slug = *in.Slug
	}
	if in.Title != nil {
		r.Title = *in.Title
	}
	if in.Artist != nil {
		r.Artist = *in.Artist
	}
	if err := setTiming(&r, in.ReleaseAt, in.ReleaseDate, in.DefaultZone); err != nil {
		return err
	}
	if err := patchTargets(&r, in); err != nil {
		return err
	}
	if in.CanaryFans != nil {
		if r.CanaryFans, err = parseCanaryFans(*in.CanaryFans); err != nil {
			return err
		}
	}
	moves := !r.SameTiming(old)
	ctx := ctxOf(c)
	if err := s.validateRelease(ctx, r, moves); err != nil {
		return err
	}
	out, moved, lost, err := s.app.UpdateRelease(ctx, old, r, in.AcceptUndeliverable)
	if errors.Is(err, store.ErrConflict) {
		// Either the slug is taken or the release stopped being scheduled
		// meanwhile; read it again to say which.
		if cur, rerr := s.store.Release(ctx, r.ID); rerr == nil && cur.Status != store.ReleaseScheduled {
			return releaseNotScheduled(cur)
		}
		return errorf(http.StatusConflict, "slug_taken", "Another release already uses the slug %q.", r.Slug)
	}
	if err != nil {
		return err
	}
	v, err := s.withState(ctx, out.ID, s.releaseView(out))
	if err != nil {
		return err
	}
	v.Rescheduled = &moved
	if lost > 0 {
		v.NeedsReconnect = &lost
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) cancelRelease(c echo.Context) error {
	r, err := s.releaseParam(c)
	if err != nil {
		return err
	}
	ctx := ctxOf(c)
	if _, err := s.app.CancelRelease(ctx, r.ID); err != nil {
		return err
	}
	if r, err = s.store.Release(ctx, r.ID); err != nil {
		return err
	}
	v, err := s.withState(ctx, r.ID, s.releaseView(r))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// releasePlan answers GET /v1/releases/{id}/plan.
func (s *Server) releasePlan(c echo.Context) error {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return errReleaseNotFound
	}
	p, err := s.app.Plan(ctxOf(c), id)
	if err != nil {
		return err
	}
	out := wire.Plan{ReleaseID: p.ReleaseID.String(), AsOf: p.AsOf, Providers: map[string]wire.ProviderPlan{}}
	for n, pp := range p.Providers {
		acts := map[string]int{}
		for a, k := range pp.Actions {
			acts[string(a)] = k
		}
		out.Providers[string(n)] = wire.ProviderPlan{Presaves: pp.Presaves, Actions: acts, Calls: pp.Calls,
			RatePerSecond: pp.RatePerSecond, DrainSeconds: pp.DrainSeconds, Units: pp.Units, DailyUnits: pp.DailyUnits,
			QuotaDays: pp.QuotaDays, Undeliverable: pp.Undeliverable, Resolved: pp.Resolved}
	}
	out.Warnings = warningsView(p.Warnings)
	return c.JSON(http.StatusOK, out)
}

// resumeRelease answers POST /v1/releases/{id}/resume: the operator lets
// a paused release drain again (see presave.Service.Resume).
func (s *Server) resumeRelease(c echo.Context) error {
	r, err := s.releaseParam(c)
	if err != nil {
		return err
	}
	var in wire.Resume
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
	}
	p := providers.Name(in.Provider)
	if p != "" && !p.Valid() {
		return badRequest("unknown_provider", "provider must be spotify, youtube or applemusic (or absent: every paused provider), not %q.", in.Provider)
	}
	ctx := ctxOf(c)
	resumed, err := s.app.Resume(ctx, r.ID, p)
	if err != nil {
		return err
	}
	v, err := s.withState(ctx, r.ID, s.releaseView(r))
	if err != nil {
		return err
	}
	v.Resumed = map[string]int{}
	for n, k := range resumed {
		v.Resumed[string(n)] = k
	}
	return c.JSON(http.StatusOK, v)
}

// patchTargets applies a PATCH's targets to r: absent fields keep their
// value; the retired playlist_id is refused.
func patchTargets(r *store.Release, in releasePatch) error {
	if sp := in.Spotify; sp != nil {
		if sp.AlbumIDs != nil {
			r.SpotifyAlbumIDs = *sp.AlbumIDs
		}
		if sp.TrackIDs != nil {
			r.SpotifyTrackIDs = *sp.TrackIDs
		}
		if sp.ArtistIDs != nil {
			r.SpotifyArtistIDs = *sp.ArtistIDs
		}
		if sp.PlaylistID != nil {
			return errPlaylistRetired(providers.Spotify)
		}
		if sp.FollowPlaylistID != nil {
			r.SpotifyFollowPlaylistID = *sp.FollowPlaylistID
		}
		if sp.MyPlaylist != nil {
			r.SpotifyMyPlaylist = myPlaylistOf(sp.MyPlaylist)
		}
		if sp.UPC != nil {
			r.SpotifyUPC = normalizeCode(*sp.UPC)
		}
		if sp.ISRCs != nil {
			r.SpotifyISRCs = normalizeCodes(*sp.ISRCs)
		}
	}
	if yt := in.YouTube; yt != nil {
		if yt.PlaylistID != nil {
			return errPlaylistRetired(providers.YouTube)
		}
		if yt.VideoID != nil {
			r.YouTubeVideoID = *yt.VideoID
		}
		if yt.ChannelID != nil {
			r.YouTubeChannelID = *yt.ChannelID
		}
		if yt.MyPlaylist != nil {
			r.YouTubeMyPlaylist = myPlaylistOf(yt.MyPlaylist)
		}
	}
	if am := in.AppleMusic; am != nil {
		if am.AlbumIDs != nil {
			r.AppleMusicAlbumIDs = *am.AlbumIDs
		}
		if am.SongIDs != nil {
			r.AppleMusicSongIDs = *am.SongIDs
		}
		if am.ByCodes != nil {
			r.AppleMusicByCodes = *am.ByCodes
		}
		if am.MyPlaylist != nil {
			r.AppleMusicMyPlaylist = myPlaylistOf(am.MyPlaylist)
		}
	}
	return nil
}
