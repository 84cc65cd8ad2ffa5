package scenario_test

import (
	"testing"

	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/scenario"
)

// TestDuplicates counts surplus entries only: items added twice, and a
// second playlist made for the same release (same description).
func TestDuplicates(t *testing.T) {
	st := fake.State{Users: []fake.UserState{
		{ID: "a", Albums: []string{"x"}, Playlists: []fake.PlaylistState{
			{ID: "p1", Description: "d [presave:r1]", Items: []string{"t1", "t2", "t1", "t1"}},
			{ID: "p2", Description: "d [presave:r1]", Items: []string{"t1"}},
		}},
		{ID: "b", Likes: []string{"v"}, Subscriptions: []string{"c"}, Playlists: []fake.PlaylistState{{ID: "p3", Items: []string{"t1"}}}},
	}}
	if got := scenario.Duplicates(st); got != 3 {
		t.Fatalf("Duplicates = %d, want 3: %v", got, scenario.DuplicateEntries(st))
	}
	if got := scenario.Entries(st); got != 12 {
		t.Fatalf("Entries = %d, want 12", got)
	}
}
