package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/ratelimit"
	"github.com/presave/presave/internal/store"
)

// Resolution backoff: a code not found yet is searched again after
// resolveBase, doubling up to resolveMax, so a release late in the
// catalogue costs one search per code every 30 s at most (never one per
// fan), and is drained within a minute of appearing.
const (
	resolveBase = 5 * time.Second
	resolveMax  = 30 * time.Second
)

// resolveTargets searches, once per release (not per fan), the Spotify
// catalogue for the codes of every release coming due whose UPC or ISRCs
// are not resolved yet, on the app's own token, and records what it
// finds; the release's pre-saves wait meanwhile (the guard chooses no
// canary). A release still unresolved NOT_LIVE_GIVE_UP after it was due
// is paused rather than failing its fans.
func (w *Worker) resolveTargets(ctx context.Context) error {
	due, err := w.st.ResolutionsDue(ctx, w.cfg.Queue.Window)
	if err != nil || len(due) == 0 {
		return err
	}
	prov, ok := w.provs.Get(providers.Spotify)
	if !ok {
		return nil
	}
	res, ok := prov.(providers.Resolver)
	if !ok {
		return nil
	}
	for _, d := range due {
		if err := w.resolveRelease(ctx, res, d); err != nil {
			return err
		}
	}
	return nil
}

// resolveRelease searches one release's unresolved codes and records the
// outcome.
func (w *Worker) resolveRelease(ctx context.Context, res providers.Resolver, d store.DueResolution) error {
	r := d.Release
	log := w.log.With("release_id", r.ID, "provider", providers.Spotify)
	found := map[string]string{}
	var searchErr error
	for _, c := range r.Unresolved() {
		// A search is a request like any other against the app's rate.
		if err := w.limiter.Wait(ctx, string(providers.Spotify), 1, w.cfg.MaxLimiterWait); err != nil {
			searchErr = err
			break
		}
		id, err := res.Resolve(ctx, c.Kind, c.Code)
		if err != nil {
			searchErr = err
			if providers.ClassOf(err) == providers.RateLimited {
				pe, _ := providers.AsError(err)
				w.rateLimitPause(ctx, log, string(providers.Spotify), pe)
				break
			}
			continue
		}
		if id != "" {
			found[store.CodeKey(c.Kind, c.Code)] = id
		}
	}
	wait := min(resolveBase<<min(r.SpotifyResolution.Attempts, 8), resolveMax)
	out, err := w.st.RecordResolution(ctx, r.ID, found, time.Now().Add(wait))
	if err != nil {
		return err
	}
	if out.SpotifyResolution.State == store.ResolutionResolved {
		log.Info("release targets resolved", "searches", out.SpotifyResolution.Attempts, "album_ids", out.SpotifyAlbumIDs,
			"track_ids", out.SpotifyTrackIDs)
		return nil
	}
	if searchErr != nil && !errors.Is(searchErr, context.Canceled) {
		var we *ratelimit.WaitError
		if !errors.As(searchErr, &we) {
			log.Warn("resolving release targets: search failed", "err", searchErr)
		}
	}
	if out.SpotifyResolution.State != store.ResolutionPending || time.Since(d.FirstDue) <= w.cfg.NotLiveGiveUp {
		return nil
	}
	missing := out.Unresolved()
	paused, err := w.st.PauseGuard(ctx, r.ID, providers.Spotify, store.GuardCanary, time.Time{}, store.Pause{Cause: store.PauseUnresolved,
		Action: providers.ActionSave, Error: "not_in_catalogue: " + store.CodeKey(missing[0].Kind, missing[0].Code),
		Failed: len(missing), Seen: len(out.SpotifyCodes())})
	if err != nil {
		return err
	}
	if paused {
		log.Warn("release paused: its codes are not in the catalogue", "unresolved", len(missing), "give_up", w.cfg.NotLiveGiveUp)
	}
	return nil
}
