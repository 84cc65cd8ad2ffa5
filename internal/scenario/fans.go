// Package scenario plays fans and reads how a run ended: simulated fans
// in many zones, a sample release, connecting them all through the API,
// watching the drain in PostgreSQL, and checking the fake provider for
// duplicates and missing entries. The demo, the benchmark and the
// reliability suite share it.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presave/presave/internal/wire"

	"github.com/presave/presave/internal/apiclient"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
)

// Zones are the time zones simulated fans live in.
var Zones = []string{
	"America/Los_Angeles", "America/New_York", "America/Sao_Paulo", "Europe/London",
	"Europe/Paris", "Africa/Lagos", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney",
}

// Fan is one simulated fan.
type Fan struct {
	Provider string // "spotify", "youtube" or "applemusic"
	User     string // account ID at the fake (Apple Music: the fake's user; presave never learns it)
	Zone     string
}

// MakeFans returns n fans, Spotify, YouTube and Apple Music in turn (a
// third each), spread over Zones; prefix keeps runs sharing one fake
// apart.
func MakeFans(n int, prefix string) []Fan {
	fans := make([]Fan, n)
	for i := range fans {
		p := providers.Names[i%len(providers.Names)]
		fans[i] = Fan{Provider: string(p), User: fmt.Sprintf("%s-%05d", prefix, i), Zone: Zones[i%len(Zones)]}
	}
	return fans
}

// The sample release's Apple Music album and its songs, which SeedFake
// puts in the fake's catalogue (every storefront).
var (
	SampleAppleAlbum = "1616728060"
	SampleAppleSongs = []string{"1616728061", "1616728062"}
)

// SeedFake puts the sample release's Apple Music album and songs in the
// catalogue of the fake at fakeURL: Apple's catalogue holds only what
// was delivered to it.
func SeedFake(ctx context.Context, fakeURL string) error {
	items := []fake.AppleItem{{Type: "albums", ID: SampleAppleAlbum, Tracks: SampleAppleSongs}}
	for _, s := range SampleAppleSongs {
		items = append(items, fake.AppleItem{Type: "songs", ID: s})
	}
	for _, it := range items {
		if err := apiclient.FakeControl(ctx, fakeURL, "applemusic/catalog", it); err != nil {
			return err
		}
	}
	return nil
}

// SampleRelease is a release asking every action of every provider, due
// at due (fixed timing).
func SampleRelease(slug string, due time.Time) wire.ReleaseCreate {
	return wire.ReleaseCreate{
		Slug: slug, Title: "Midnight Signals", Artist: "The Fakes", ReleaseAt: wire.Time(due),
		Spotify: &wire.SpotifyTarget{AlbumIDs: []string{"4aawyAB9vmqN3uQ7FjRGTy"}, TrackIDs: []string{"3n3Ppam7vgaVa1iaRUc9Lp"},
			ArtistIDs: []string{"0OdUWJ0sBjDrqHygGUXeCF"}, FollowPlaylistID: "37i9dQZF1DXcBWIGoYBM5M",
			MyPlaylist: &wire.MyPlaylist{Name: "Midnight Signals: The Fakes", Description: "Pre-saved on release day."}},
		YouTube: &wire.YouTubeTarget{VideoID: "dQw4w9WgXcQ", ChannelID: "UCpresaveDemoChannel0001",
			MyPlaylist: &wire.MyPlaylist{Name: "Midnight Signals: The Fakes"}},
		AppleMusic: &wire.AppleMusicTarget{AlbumIDs: []string{SampleAppleAlbum},
			MyPlaylist: &wire.MyPlaylist{Name: "Midnight Signals: The Fakes"}},
	}
}

// ConnectAll connects every fan to release (slug or ID) through the real
// flow, at most parallel at a time. onDone, when set, is called after each
// fan with the number connected so far. It stops at the first failure and
// returns it; results are in fans' order.
func ConnectAll(ctx context.Context, hc *http.Client, apiURL, release string, fans []Fan, parallel int, onDone func(done int)) ([]apiclient.ConnectResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := make([]apiclient.ConnectResult, len(fans))
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(fans) || ctx.Err() != nil {
					return
				}
				f := fans[i]
				r, err := apiclient.Connect(ctx, hc, apiURL, f.Provider, release, f.Zone, f.User)
				if err != nil {
					cancel(err)
					return
				}
				out[i] = r
				n := done.Add(1)
				if onDone != nil {
					onDone(int(n))
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return out, err
	}
	return out, nil
}

// Progress is where a set of pre-saves stands.
type Progress struct {
	Total     int
	Pending   int // pending in PostgreSQL (not due within the relay window)
	Queued    int // enqueued in asynq
	Running   int
	Held      int // held by a paused release's guard
	Done      int
	Partial   int
	Failed    int
	Cancelled int
	// Reasons counts finished, not-done pre-saves by their last error.
	Reasons map[string]int
	// ByProvider counts done pre-saves per provider.
	DoneBy map[providers.Name]int
}

// Open is how many pre-saves have not finished.
func (p Progress) Open() int { return p.Pending + p.Queued + p.Running + p.Held }

// Finished is how many have.
func (p Progress) Finished() int { return p.Done + p.Partial + p.Failed + p.Cancelled }

// ReasonsString lists Reasons as "reason n, reason n".
func (p Progress) ReasonsString() string {
	keys := make([]string, 0, len(p.Reasons))
	for k := range p.Reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		r := k
		if r == "" {
			r = "no reason"
		}
		parts[i] = fmt.Sprintf("%s %d", r, p.Reasons[k])
	}
	return strings.Join(parts, ", ")
}

// ReadProgress tallies the pre-saves of releaseIDs (all when none).
func ReadProgress(ctx context.Context, st *store.Store, releaseIDs ...uuid.UUID) (Progress, error) {
	tally, err := inspect.TallyPresaves(ctx, st, releaseIDs...)
	if err != nil {
		return Progress{}, err
	}
	p := Progress{Reasons: map[string]int{}, DoneBy: map[providers.Name]int{}}
	for _, t := range tally {
		p.Total += t.N
		switch t.Status {
		case store.PresavePending:
			p.Pending += t.N
		case store.PresaveEnqueued:
			p.Queued += t.N
		case store.PresaveRunning:
			p.Running += t.N
		case store.PresaveHeld:
			p.Held += t.N
		case store.PresaveDone:
			p.Done += t.N
			p.DoneBy[t.Provider] += t.N
		case store.PresavePartial:
			p.Partial += t.N
			p.Reasons[t.Reason] += t.N
		case store.PresaveFailed:
			p.Failed += t.N
			p.Reasons[t.Reason] += t.N
		case store.PresaveCancelled:
			p.Cancelled += t.N
		}
	}
	return p, nil
}

// WaitDrained polls every interval until all expected pre-saves of
// releaseIDs have finished, calling tick (when set) with each reading. A
// database error is retried (the reliability suite restarts PostgreSQL);
// the last one is returned if ctx ends first.
func WaitDrained(ctx context.Context, st *store.Store, expected int, interval time.Duration, tick func(Progress), releaseIDs ...uuid.UUID) (Progress, error) {
	var last Progress
	var lastErr error
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		p, err := ReadProgress(qctx, st, releaseIDs...)
		cancel()
		if err == nil {
			last, lastErr = p, nil
			if tick != nil {
				tick(p)
			}
			if p.Total >= expected && p.Open() == 0 {
				return p, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("not drained: %d of %d pre-saves still open (%d pending, %d queued, %d running): %w",
				last.Open(), expected, last.Pending, last.Queued, last.Running, ctx.Err())
			return last, errors.Join(err, lastErr)
		case <-time.After(interval):
		}
	}
}

// EndState is what a run left behind, on the fake and in the database.
type EndState struct {
	Expected int
	Progress
	// Duplicates and Entries are counted on the fake (see Duplicates).
	Duplicates int
	Entries    int
	inspect.Secrets
	Times inspect.ActionTimes
}

// ReadEndState reads the end state of releaseIDs (all when none).
func ReadEndState(ctx context.Context, st *store.Store, fakeURL string, expected int, releaseIDs ...uuid.UUID) (EndState, error) {
	e := EndState{Expected: expected}
	var err error
	if e.Progress, err = ReadProgress(ctx, st, releaseIDs...); err != nil {
		return e, err
	}
	if e.Secrets, err = inspect.CountSecrets(ctx, st); err != nil {
		return e, err
	}
	if e.Times, err = inspect.PresaveActionTimes(ctx, st, releaseIDs...); err != nil {
		return e, err
	}
	fs, err := apiclient.FakeState(ctx, fakeURL)
	if err != nil {
		return e, err
	}
	e.Duplicates, e.Entries = Duplicates(fs), Entries(fs)
	return e, nil
}

// Line is the one-line summary the reliability suite prints per scenario.
func (e EndState) Line(name string) string {
	failed := fmt.Sprintf("%d", e.Failed+e.Partial)
	if r := e.ReasonsString(); r != "" {
		failed += " (" + r + ")"
	}
	return fmt.Sprintf("%-18s expected %d  done %d  failed %s  open %d  duplicates %d  tokens left %d  revocations left %d",
		name, e.Expected, e.Done, failed, e.Open(), e.Duplicates, e.Tokens, e.Revocations)
}

// WaitSecretsGone polls until no revocation is pending (the revoke tasks
// ran) and no token is left that no open pre-save needs, or ctx ends,
// and returns the last count.
func WaitSecretsGone(ctx context.Context, st *store.Store, interval time.Duration) (inspect.Secrets, error) {
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := inspect.CountSecrets(qctx, st)
		cancel()
		if err == nil && s.Unneeded == 0 && s.Revocations == 0 {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, errors.Join(err, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// Missing counts the fans (of those given) whose pre-save is not wholly
// on the fake: some entry spec asks for is absent from their library,
// follows, likes, subscriptions or own playlist (the one presave made:
// its name is the release's). Zero means nothing was lost.
func Missing(st fake.State, spec wire.ReleaseCreate, fans []Fan) int {
	users := make(map[string]fake.UserState, len(st.Users))
	for _, u := range st.Users {
		users[string(u.Provider)+"/"+u.ID] = u
	}
	n := 0
	for _, f := range fans {
		u := users[f.Provider+"/"+f.User]
		var ok bool
		switch f.Provider {
		case "spotify":
			s := spec.Spotify
			ok = s == nil || (containsAll(u.Albums, s.AlbumIDs) && containsAll(u.Tracks, s.TrackIDs) &&
				containsAll(u.Artists, s.ArtistIDs) &&
				(s.FollowPlaylistID == "" || slices.Contains(u.FollowedPlaylists, s.FollowPlaylistID)) &&
				(s.MyPlaylist == nil || len(s.TrackIDs) == 0 || containsAll(ownItems(u, s.MyPlaylist.Name), trackURIs(s.TrackIDs))))
		case "youtube":
			y := spec.YouTube
			ok = y == nil || ((y.VideoID == "" || slices.Contains(u.Likes, y.VideoID)) &&
				(y.ChannelID == "" || slices.Contains(u.Subscriptions, y.ChannelID)) &&
				(y.MyPlaylist == nil || y.VideoID == "" || slices.Contains(ownItems(u, y.MyPlaylist.Name), y.VideoID)))
		case "applemusic":
			a := spec.AppleMusic
			// The sample's album; its songs in the fan's own playlist.
			ok = a == nil || (containsAll(u.Albums, a.AlbumIDs) &&
				(a.MyPlaylist == nil || !slices.Contains(a.AlbumIDs, SampleAppleAlbum) || containsAll(ownItems(u, a.MyPlaylist.Name), SampleAppleSongs)))
		}
		if !ok {
			n++
		}
	}
	return n
}

// ownItems is the items of the user's playlists named name.
func ownItems(u fake.UserState, name string) []string {
	var out []string
	for _, pl := range u.Playlists {
		if pl.Name == name {
			out = append(out, pl.Items...)
		}
	}
	return out
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func trackURIs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = "spotify:track:" + id
	}
	return out
}
