package scenario_test

import (
	"testing"

	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/scenario"
)

// TestDuplicates counts surplus entries only.
func TestDuplicates(t *testing.T) {
	st := fake.State{Users: []fake.UserState{
		{ID: "a", Albums: []string{"x"}, Playlists: map[string][]string{"p": {"t1", "t2", "t1", "t1"}}},
		{ID: "b", Likes: []string{"v"}, Playlists: map[string][]string{"p": {"t1"}}},
	}}
	if got := scenario.Duplicates(st); got != 2 {
		t.Fatalf("Duplicates = %d, want 2", got)
	}
	if got := scenario.Entries(st); got != 7 {
		t.Fatalf("Entries = %d, want 7", got)
	}
}
