package fake

import (
	"crypto/rand"
	"slices"

	"github.com/presave/presave/internal/providers"
)

// catalogueOwner owns every playlist the fake did not see created: the
// artist's, named by a release. Both services let any account follow or
// read a public playlist; only its owner (or, on Spotify, a collaborator)
// may add to it.
const catalogueOwner = "the-artist"

// playlist is one playlist at a provider.
type playlist struct {
	p           providers.Name
	id          string
	owner       string
	name        string
	description string
	public      bool
	// items are Spotify track URIs or YouTube video IDs in order,
	// duplicates kept (as both services do) so a double add shows.
	items []string
}

// playlistLocked returns the playlist id at p: one a user created, or
// the catalogue's (created on first reference, public, owned by
// catalogueOwner). s.mu must be held.
func (s *Server) playlistLocked(p providers.Name, id string) *playlist {
	k := userKey{p, id}
	pl := s.playlists[k]
	if pl == nil {
		pl = &playlist{p: p, id: id, owner: catalogueOwner, name: "Playlist " + id, public: true}
		s.playlists[k] = pl
	}
	return pl
}

// createPlaylistLocked creates a playlist owned by user. s.mu must be held.
func (s *Server) createPlaylistLocked(p providers.Name, user, name, description string, public bool) *playlist {
	id := newPlaylistID(p)
	pl := &playlist{p: p, id: id, owner: user, name: name, description: description, public: public}
	s.playlists[userKey{p, id}] = pl
	s.created = append(s.created, pl)
	return pl
}

// ownedLocked lists the playlists user created at p, oldest first.
// s.mu must be held.
func (s *Server) ownedLocked(p providers.Name, user string) []*playlist {
	var out []*playlist
	for _, pl := range s.created {
		if pl.p == p && pl.owner == user {
			out = append(out, pl)
		}
	}
	return out
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newPlaylistID is an ID shaped like the provider's: 22 base-62
// characters on Spotify, "PL" and 32 characters on YouTube, "p." and 14
// on Apple Music (a library playlist).
func newPlaylistID(p providers.Name) string {
	n, prefix, alphabet := 22, "", base62
	switch p {
	case providers.YouTube:
		n, prefix, alphabet = 32, "PL", base62+"-_"
	case providers.AppleMusic:
		n, prefix = 14, "p."
	}
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b)
}

// PlaylistState is one playlist as the state API shows it.
type PlaylistState struct {
	ID          string   `json:"id"`
	Owner       string   `json:"owner"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Public      bool     `json:"public"`
	Items       []string `json:"items"`
}

// visibleTo reports whether user may see the playlist: a public one, or
// their own.
func (pl *playlist) visibleTo(user string) bool { return pl.public || pl.owner == user }

func (pl *playlist) state() PlaylistState {
	return PlaylistState{ID: pl.id, Owner: pl.owner, Name: pl.name, Description: pl.description,
		Public: pl.public, Items: slices.Clone(pl.items)}
}

// DeletePlaylist deletes a playlist a user created, as the user may in
// their app.
func (s *Server) DeletePlaylist(p providers.Name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.playlists, userKey{p, id})
	s.created = slices.DeleteFunc(s.created, func(pl *playlist) bool { return pl.p == p && pl.id == id })
}
