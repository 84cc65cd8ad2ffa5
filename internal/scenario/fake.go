package scenario

import (
	"fmt"

	"github.com/presave/presave/internal/providers/fake"
)

// Duplicates counts the surplus entries in every user's library, follows,
// likes and playlists: an entry present k times counts k-1. Zero means
// every action happened at most once.
func Duplicates(st fake.State) int {
	n := 0
	for _, u := range st.Users {
		for _, list := range [][]string{u.Albums, u.Tracks, u.Artists, u.Likes} {
			n += surplus(list)
		}
		for _, items := range u.Playlists {
			n += surplus(items)
		}
	}
	return n
}

func surplus(list []string) int {
	seen := make(map[string]int, len(list))
	n := 0
	for _, v := range list {
		if seen[v] > 0 {
			n++
		}
		seen[v]++
	}
	return n
}

// Entries counts every entry in every user's library, follows, likes and
// playlists: the provider-side effects of the actions done.
func Entries(st fake.State) int {
	n := 0
	for _, u := range st.Users {
		n += len(u.Albums) + len(u.Tracks) + len(u.Artists) + len(u.Likes)
		for _, items := range u.Playlists {
			n += len(items)
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
		add(u, "likes", u.Likes)
		for id, items := range u.Playlists {
			add(u, "playlist:"+id, items)
		}
	}
	return out
}
