package scenario

import (
	"fmt"

	"github.com/presave/presave/internal/providers/fake"
)

// Duplicates counts the surplus entries in every user's library, follows,
// likes, subscriptions and own playlists: an entry present k times counts
// k-1, and so does a playlist created k times (k playlists with one
// description, which carries the release's marker). Zero means every
// action happened at most once.
func Duplicates(st fake.State) int {
	return len(DuplicateEntries(st))
}

// Entries counts every entry in every user's library, follows, likes,
// subscriptions and own playlists (each playlist, and each item in it):
// the provider-side effects of the actions done.
func Entries(st fake.State) int {
	n := 0
	for _, u := range st.Users {
		n += len(u.Albums) + len(u.Tracks) + len(u.Artists) + len(u.FollowedPlaylists) + len(u.Likes) + len(u.Subscriptions)
		for _, pl := range u.Playlists {
			n += 1 + len(pl.Items)
		}
	}
	return n
}

// DuplicateEntries describes each surplus entry Duplicates counts, as
// "provider/user list item", for failure messages.
func DuplicateEntries(st fake.State) []string {
	var out []string
	add := func(u fake.UserState, list string, items []string) {
		seen := map[string]bool{}
		for _, v := range items {
			if seen[v] {
				out = append(out, fmt.Sprintf("%s/%s %s %s", u.Provider, u.ID, list, v))
			}
			seen[v] = true
		}
	}
	for _, u := range st.Users {
		add(u, "albums", u.Albums)
		add(u, "tracks", u.Tracks)
		add(u, "artists", u.Artists)
		add(u, "followed_playlists", u.FollowedPlaylists)
		add(u, "likes", u.Likes)
		add(u, "subscriptions", u.Subscriptions)
		var descriptions []string
		for _, pl := range u.Playlists {
			descriptions = append(descriptions, pl.Description)
			add(u, "playlist:"+pl.ID, pl.Items)
		}
		add(u, "playlists described", descriptions)
	}
	return out
}
