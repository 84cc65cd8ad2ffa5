// Package providerstest holds what the provider clients' tests share.
// Neither binary links it.
package providerstest

import (
	"context"

	"github.com/presave/presave/internal/providers"
)

// Perform does what the worker does for one action: add_to_my_playlist
// first finds or creates the fan's playlist (the worker records its ID
// in between), then adds to it. It returns the target as the action left
// it (with the playlist's ID).
func Perform(ctx context.Context, c providers.Client, a providers.Action, t providers.Target) (providers.Outcome, providers.Target, error) {
	if a == providers.ActionAddToMyPlaylist && t.MyPlaylist.ID == "" {
		id, err := c.OwnPlaylist(ctx, t)
		if err != nil {
			return "", t, err
		}
		t.MyPlaylist.ID = id
	}
	out, err := c.Perform(ctx, a, t)
	return out, t, err
}
