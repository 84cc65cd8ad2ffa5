package api

import (
	"errors"
	"html/template"
	"net/http"
	"slices"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/presave/presave/internal/locale"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// presaveItem is one pre-save as the manage and confirmation pages show it.
type presaveItem struct {
	ID                  uuid.UUID
	Slug, Title, Artist string
	Provider            providers.Name
	Label               string
	Status              store.PresaveStatus
	Open                bool
	// Day, Clock: when it runs, in the fan's recorded zone.
	Day, Clock, Zone string
	ConsentVersion   string
	// Reconnect: the release moved past the fan's access; connecting
	// again on the release page keeps the pre-save.
	Reconnect bool
	// Held: the release's campaign guard paused it on the provider.
	Held bool
	// AccessUntil is the day the fan's access to the provider ends
	// (presave.Horizon, in the fan's zone), for an open pre-save whose
	// provider sets a limit; empty otherwise.
	AccessUntil string
}

func (p *page) item(l *locale.Locale, ps store.Presave, r *store.Release) presaveItem {
	it := presaveItem{ID: ps.ID, Provider: ps.Provider, Label: providerLabel(ps.Provider), Status: ps.Status,
		Open: ps.Status.Open(), Zone: ps.FanZone, ConsentVersion: ps.ConsentVersion, Title: l.Sprintf("me.a_release"),
		Reconnect: ps.Status == store.PresaveNeedsReconnect && r != nil && r.Status == store.ReleaseScheduled,
		Held:      ps.Status == store.PresaveHeld}
	it.Day, it.Clock = when(l, ps.DueAt, ps.FanZone)
	if r != nil {
		it.Slug, it.Title, it.Artist = r.Slug, r.Title, r.Artist
	}
	return it
}

// accountItem is a connected provider account.
type accountItem struct {
	Provider providers.Name
	Label    string
	// Grant is true while presave holds an access grant for it.
	Grant bool
}

// manageView is /me.
type manageView struct {
	Known bool
	Done  template.HTML
	// Waiting counts the open pre-saves.
	Waiting  int
	Presaves []presaveItem
	Accounts []accountItem
}

// doneMessages are the outcomes a redirect to /me may announce (the
// catalogue's me.done.<outcome>); only these are shown, never text from
// the URL.
var doneMessages = []string{"withdrawn", "disconnected"}

// manage renders /me: the fan's pre-saves and connections (fan cookie).
// A browser without a (valid) fan cookie gets a page saying so.
func (p *page) manage(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	ctx := ctxOf(c)
	fan, err := p.s.optionalFan(c)
	if err != nil {
		return err
	}
	l := p.s.localeOf(c)
	title := message(l, "me.title")
	v := manageView{Known: fan != uuid.Nil}
	if done := c.QueryParam("done"); slices.Contains(doneMessages, done) {
		v.Done = message(l, "me.done."+done)
	}
	if !v.Known {
		return p.render(c, http.StatusOK, "manage", title, v)
	}
	ex, err := p.s.store.ExportFan(ctx, fan)
	if errors.Is(err, store.ErrNotFound) {
		v.Known = false
		return p.render(c, http.StatusOK, "manage", title, v)
	}
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, 0, len(ex.Presaves))
	for _, ps := range ex.Presaves {
		ids = append(ids, ps.ReleaseID)
	}
	releases, err := p.s.store.ReleasesByID(ctx, ids)
	if err != nil {
		return err
	}
	horizons := p.s.horizons(ex.Tokens)
	for _, ps := range ex.Presaves {
		var rp *store.Release
		if r, ok := releases[ps.ReleaseID]; ok {
			rp = &r
		}
		it := p.item(l, ps, rp)
		if h, ok := horizons[ps.Provider]; ok && it.Open {
			it.AccessUntil, _ = when(l, h, ps.FanZone)
		}
		if it.Open {
			v.Waiting++
		}
		v.Presaves = append(v.Presaves, it)
	}
	for _, a := range ex.Accounts {
		ai := accountItem{Provider: a.Provider, Label: providerLabel(a.Provider)}
		for _, t := range ex.Tokens {
			ai.Grant = ai.Grant || t.Provider == a.Provider
		}
		v.Accounts = append(v.Accounts, ai)
	}
	for _, t := range ex.Tokens {
		// A provider that names no account (Apple Music): the
		// connection is the access we hold, nothing else.
		if !t.Provider.HasAccountID() {
			v.Accounts = append(v.Accounts, accountItem{Provider: t.Provider, Label: providerLabel(t.Provider), Grant: true})
		}
	}
	return p.render(c, http.StatusOK, "manage", title, v)
}

// ownPresave reads the pre-save named by :id if it is the fan's.
func (p *page) ownPresave(c echo.Context) (store.Presave, *store.Release, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return store.Presave{}, nil, errPresaveNotFound
	}
	ps, err := p.s.store.Presave(ctxOf(c), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ps.FanID != fanOf(c)) {
		return store.Presave{}, nil, errPresaveNotFound
	}
	if err != nil {
		return store.Presave{}, nil, err
	}
	r, err := p.s.store.Release(ctxOf(c), ps.ReleaseID)
	if errors.Is(err, store.ErrNotFound) {
		return ps, nil, nil
	}
	if err != nil {
		return store.Presave{}, nil, err
	}
	return ps, &r, nil
}

// presaveView is the confirmation page.
type presavePageView struct {
	presaveItem
	// Agreed is the wording the fan agreed to (the recorded version, in
	// the recorded locale, AgreedLocale, written AgreedDir), for this
	// provider only.
	Agreed                  template.HTML
	AgreedLocale, AgreedDir string
}

// presave renders the confirmation: what will happen, when, and the
// ways to change one's mind.
func (p *page) presave(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	ps, r, err := p.ownPresave(c)
	if err != nil {
		return err
	}
	l := p.s.localeOf(c)
	v := presavePageView{presaveItem: p.item(l, ps, r)}
	// The wording is shown in the locale the fan agreed in, whatever the
	// page's language is now.
	agreed, known := p.s.locales.Lookup(ps.ConsentLocale)
	if _, ok := p.wordings[wordingKey(ps.ConsentVersion, ps.ConsentLocale)]; ok && known && r != nil {
		offers := []offer{{Name: ps.Provider, Label: providerLabel(ps.Provider), Actions: ps.Actions,
			PlaylistName: r.Target(ps.Provider).MyPlaylist.Name}}
		if v.Agreed, err = p.consentText(ps.ConsentVersion, agreed, *r, ps.FanZone, offers); err != nil {
			return err
		}
		v.AgreedLocale, v.AgreedDir = agreed.Code(), agreed.Dir()
	}
	title := message(l, "presave.title")
	if v.Open {
		title = message(l, "presave.set")
	}
	return p.render(c, http.StatusOK, "presave", title, v)
}

// confirmView is a confirmation step before a state-changing form.
type confirmView struct {
	Heading, Text, Button template.HTML
	Action, Cancel        string
	Danger                bool
}

func (p *page) confirm(c echo.Context, v confirmView) error {
	if _, err := p.csrfToken(c); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return p.render(c, http.StatusOK, "confirm", v.Heading, v)
}

func (p *page) confirmWithdraw(c echo.Context) error {
	ps, r, err := p.ownPresave(c)
	if err != nil {
		return err
	}
	l := p.s.localeOf(c)
	it := p.item(l, ps, r)
	return p.confirm(c, confirmView{
		Heading: message(l, "withdraw.heading"),
		Text:    message(l, "withdraw.text", it.Label, bdi(it.Title)),
		Action:  "/me/presaves/" + ps.ID.String() + "/withdraw", Button: message(l, "withdraw.button"),
		Cancel: "/me/presaves/" + ps.ID.String(),
	})
}

func (p *page) withdraw(c echo.Context) error {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return errPresaveNotFound
	}
	if _, err := p.s.app.Withdraw(ctxOf(c), fanOf(c), id); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/me?done=withdrawn")
}

func (p *page) confirmDisconnect(c echo.Context) error {
	pr, err := p.s.app.Provider(c.Param("provider"))
	if err != nil {
		return err
	}
	l, label := p.s.localeOf(c), providerLabel(pr.Name())
	return p.confirm(c, confirmView{
		Heading: message(l, "disconnect.heading", label), Text: message(l, "disconnect.text", label),
		Action: "/me/connections/" + string(pr.Name()) + "/disconnect", Button: message(l, "disconnect.button", label), Cancel: "/me",
	})
}

func (p *page) disconnect(c echo.Context) error {
	pr, err := p.s.app.Provider(c.Param("provider"))
	if err != nil {
		return err
	}
	if _, err := p.s.app.Disconnect(ctxOf(c), fanOf(c), pr.Name()); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/me?done=disconnected")
}

func (p *page) confirmDelete(c echo.Context) error {
	l := p.s.localeOf(c)
	return p.confirm(c, confirmView{
		Heading: message(l, "delete.heading"), Text: message(l, "delete.text"),
		Action: "/me/delete", Button: message(l, "delete.button"), Cancel: "/me", Danger: true,
	})
}

func (p *page) deleteFan(c echo.Context) error {
	if _, err := p.s.app.DeleteFan(ctxOf(c), fanOf(c)); err != nil {
		return err
	}
	p.s.clearFanCookie(c)
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	l := p.s.localeOf(c)
	title := message(l, "deleted.title")
	return p.render(c, http.StatusOK, "message", title, messageView{
		Title: title, Message: message(l, "deleted.text"), Back: "/me", BackLabel: message(l, "deleted.done"),
	})
}

// export is the fan's data (GET /v1/me's answer) as a file download.
func (p *page) export(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="presave-my-data.json"`)
	return p.s.exportMe(c)
}
