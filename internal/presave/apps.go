package presave

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// What the provider apps, as configured, let presave serve. One rule,
// applied two ways: a fan's connection the app certainly cannot serve is
// refused (appRoom, like grantHorizon); a release the app will not serve
// in full is served as far as it can, and its artist team is warned
// (AppWarnings, Plan.Warnings) when they create, change or plan it.

// Warning is something about a release the configured provider apps will
// not serve in full. It refuses nothing.
type Warning struct {
	Provider providers.Name
	// Code is machine-readable: app_user_cap, app_full, grant_lifetime
	// or quota_days.
	Code    string
	Message string
}

// errAppFull refuses a connection to a provider app whose user cap other
// accounts fill.
func errAppFull(p providers.Provider) *Error {
	app := p.App()
	return errorf(KindConflict, "provider_app_full",
		"This site's %s app can serve only %d accounts while it is in %s status, and other fans' accounts take them all; nothing was saved. Please try again later, or pre-save on another service.",
		p.Name().Label(), app.MaxUsers, app.Status)
}

// appRoom refuses a connection of fanID (uuid.Nil: a new fan), to
// account when known, that p's app cannot serve: as many other accounts
// as its cap hold a grant. The provider itself enforces its cap (a
// Spotify app in development mode answers 403 to a user off its
// allow-list, so no such user's grant is ever stored): every stored
// grant's account is one the app serves, and with the cap reached no
// other account can be. Two fans connecting at once may both pass; the
// provider then refuses the one it does not serve.
func (s *Service) appRoom(ctx context.Context, p providers.Provider, fanID uuid.UUID, account string) error {
	app := p.App()
	if app.MaxUsers == 0 {
		return nil
	}
	n, err := s.store.AppAccounts(ctx, p.Name(), fanID, account, app.MaxUsers)
	if err != nil {
		return err
	}
	if n >= app.MaxUsers {
		s.log.WarnContext(ctx, "provider app full: connection refused", "provider", p.Name(), "status", app.Status, "max_users", app.MaxUsers)
		return errAppFull(p)
	}
	return nil
}

// AppWarnings lists what the configured apps will not serve of r, from
// the apps' status alone: a user cap, and a grant lifetime shorter than
// the wait for r.
func (s *Service) AppWarnings(r store.Release) []Warning {
	var out []Warning
	due, err := r.DueAt(DefaultZone(r))
	if err != nil {
		return nil
	}
	now := s.now()
	for _, n := range providers.Names {
		p, ok := s.providers.Get(n)
		if !ok || len(p.Actions(r.Target(n))) == 0 {
			continue
		}
		app := p.App()
		if app.MaxUsers > 0 {
			out = append(out, Warning{Provider: n, Code: "app_user_cap", Message: fmt.Sprintf(
				"The %s app is in %s status: it serves at most %d accounts across all releases, and fans beyond them are refused when they connect.",
				n.Label(), app.Status, app.MaxUsers)})
		}
		if h := Horizon(p, now); !h.IsZero() && due.After(h) {
			from := due.Add(now.Sub(h))
			out = append(out, Warning{Provider: n, Code: "grant_lifetime", Message: fmt.Sprintf(
				"%s access lasts %s from a fan's consent, so fans can pre-save this release on %s only from %s (UTC) on.",
				n.Label(), lifetime(p.GrantExpiry(now).Sub(now)), n.Label(), from.UTC().Format("2006-01-02 15:04"))})
		}
	}
	return out
}

// planWarnings adds to the app warnings what a release's open pre-saves
// show: the app's cap reached, and more quota units than one day gives.
func (s *Service) planWarnings(ctx context.Context, r store.Release, plan Plan) ([]Warning, error) {
	out := s.AppWarnings(r)
	for _, n := range providers.Names {
		p, ok := s.providers.Get(n)
		if !ok {
			continue
		}
		if app := p.App(); app.MaxUsers > 0 {
			used, err := s.store.AppAccounts(ctx, n, uuid.Nil, "", app.MaxUsers)
			if err != nil {
				return nil, err
			}
			if used >= app.MaxUsers {
				out = append(out, Warning{Provider: n, Code: "app_full", Message: fmt.Sprintf(
					"All %d accounts the %s app serves are taken: no other fan can pre-save on %s until some of them are done.", app.MaxUsers, n.Label(), n.Label())})
			}
		}
		if pp := plan.Providers[n]; pp.QuotaDays > 1 {
			out = append(out, Warning{Provider: n, Code: "quota_days", Message: fmt.Sprintf(
				"The open %s pre-saves need up to %d quota units, and the app gets %d a day: the last of them land %d days after the release.",
				n.Label(), pp.Units, pp.DailyUnits, pp.QuotaDays-1)})
		}
	}
	return out, nil
}

// lifetime spells a grant's lifetime in days.
func lifetime(d time.Duration) string {
	days := int((d + 12*time.Hour) / (24 * time.Hour))
	if days == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", days)
}
