package api

import (
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/presave/presave/internal/presave"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// offer is what a release offers on one provider.
type offer struct {
	Name    providers.Name
	Label   string
	Actions []providers.Action
	// PlaylistName names the fan's own playlist add_to_my_playlist
	// creates (wording 2026-12-v3 on).
	PlaylistName string
}

// releasePageView is the release page.
type releasePageView struct {
	Slug, Title, Artist string
	Open                bool
	Status              store.ReleaseStatus
	Fixed               bool
	// ReleaseAt (fixed timing, RFC 3339) or ReleaseDate (local timing,
	// YYYY-MM-DD) for the script that shows them in the fan's zone.
	ReleaseAt, ReleaseDate string
	Day, Clock, Zone       string
	Offers                 []offer
	ConsentVersion         string
	// ConsentLocale and ConsentDir are the consent wording's locale and
	// direction: the page's, or English where the wording has no
	// translation into it.
	ConsentLocale, ConsentDir string
	Consent                   template.HTML
	// Reconnect names the services on which this browser's fan must
	// connect again to keep a pre-save of this release (the release
	// moved past their access).
	Reconnect []string
}

func (p *page) offers(r store.Release) []offer {
	var out []offer
	for _, n := range providers.Names {
		pr, ok := p.s.providers.Get(n)
		if !ok {
			continue
		}
		t := r.Target(n)
		if acts := pr.Actions(t); len(acts) > 0 {
			out = append(out, offer{Name: n, Label: providerLabel(n), Actions: acts, PlaylistName: t.MyPlaylist.Name})
		}
	}
	return out
}

// release renders /r/{slug}.
func (p *page) release(c echo.Context) error {
	slug := c.Param("slug")
	r, err := p.s.app.FindRelease(ctxOf(c), slug)
	if err != nil {
		return err
	}
	zone := presave.DefaultZone(r)
	l := p.s.localeOf(c)
	v := releasePageView{Slug: r.Slug, Title: r.Title, Artist: r.Artist, Status: r.Status,
		Open: r.Status == store.ReleaseScheduled, Fixed: r.Timing == store.TimingFixed, Zone: zone,
		Offers: p.offers(r), ConsentVersion: p.s.cfg.ConsentVersion}
	due, err := r.DueAt(zone)
	if err != nil {
		return err
	}
	v.Day, v.Clock = when(l, due, zone)
	if v.Fixed {
		v.ReleaseAt = r.ReleaseAt.UTC().Format(time.RFC3339)
	} else {
		v.ReleaseDate = r.ReleaseDate.Format(dateLayout)
	}
	if v.Open {
		if v.Reconnect, err = p.reconnectNeeded(c, r); err != nil {
			return err
		}
	}
	if v.Open && len(v.Offers) > 0 {
		cl := p.consentLocale(l)
		v.ConsentLocale, v.ConsentDir = cl.Code(), cl.Dir()
		if v.Consent, err = p.consentText(p.s.cfg.ConsentVersion, cl, r, zone, v.Offers); err != nil {
			return err
		}
		if _, err := p.csrfToken(c); err != nil {
			return err
		}
	}
	return p.render(c, http.StatusOK, "release", message(l, "release.title", r.Title, r.Artist), v)
}

// reconnectNeeded lists the services on which the browser's fan has a
// pre-save of r left needs_reconnect.
func (p *page) reconnectNeeded(c echo.Context, r store.Release) ([]string, error) {
	fan, err := p.s.optionalFan(c)
	if err != nil || fan == uuid.Nil {
		return nil, err
	}
	names, err := p.s.store.NeedingReconnect(ctxOf(c), fan, r.ID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		out = append(out, providerLabel(n))
	}
	return out, nil
}

// start handles the release form: one submit button per provider, a box
// per action of each provider (actions_<provider>, with choose=1), the
// consent box, the fan's zone (filled in by the script; empty without
// it) and the consent version. The state is bound to this browser.
func (p *page) start(c echo.Context) error {
	form, err := c.FormParams()
	if err != nil {
		return jsonError(err)
	}
	if err := checkValues(form); err != nil {
		return err
	}
	req := startRequestFromForm(form)
	req.Release = c.Param("slug")
	provider := form.Get("provider")
	if form.Get("choose") == "1" && req.Consent && slices.Contains(providers.Names, providers.Name(provider)) {
		// The page lists each service's actions as boxes, ticked to
		// begin with; the fan consents to the ones left ticked. Nothing
		// ticked is a refusal, not "everything" (the API's default).
		req.Actions = nil
		for _, a := range form["actions_"+provider] {
			req.Actions = append(req.Actions, providers.Action(a))
		}
		if len(req.Actions) == 0 {
			return badRequest("actions_required", "Tick at least one thing presave may do on %s.", providerLabel(providers.Name(provider)))
		}
	}
	req.ViaPage = true
	res, err := p.s.startConnect(c, provider, req)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.Redirect(http.StatusFound, res.AuthorizeURL)
}

// backToRelease points the error page's way back at the release.
func backToRelease(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Set(backKey, "/r/"+c.Param("slug"))
		return next(c)
	}
}
