package api

import (
	"errors"
	"html/template"
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

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

func (p *page) item(ps store.Presave, r *store.Release) presaveItem {
	it := presaveItem{ID: ps.ID, Provider: ps.Provider, Label: providerLabel(ps.Provider), Status: ps.Status,
		Open: ps.Status.Open(), Zone: ps.FanZone, ConsentVersion: ps.ConsentVersion, Title: "a release",
		Reconnect: ps.Status == store.PresaveNeedsReconnect && r != nil && r.Status == store.ReleaseScheduled,
		Held:      ps.Status == store.PresaveHeld}
	it.Day, it.Clock = formatWhen(ps.DueAt, ps.FanZone)
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
	Known    bool
	Done     string
	Presaves []presaveItem
	Accounts []accountItem
}

// doneMessages are the outcomes a redirect to /me may announce; only
// these keys are shown, never text from the URL.
var doneMessages = map[string]string{
	"withdrawn":    "Your pre-save was withdrawn. If nothing else needed your access, we deleted it.",
	"disconnected": "The service was disconnected: its pending pre-saves are withdrawn and our access to it is deleted.",
}

// manage renders /me: the fan's pre-saves and connections (fan cookie).
// A browser without a (valid) fan cookie gets a page saying so.
func (p *page) manage(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	ctx := ctxOf(c)
	fan, err := p.s.optionalFan(c)
	if err != nil {
		return err
	}
	v := manageView{Known: fan != uuid.Nil, Done: doneMessages[c.QueryParam("done")]}
	if !v.Known {
		return p.render(c, http.StatusOK, "manage", "Your pre-saves", v)
	}
	ex, err := p.s.store.ExportFan(ctx, fan)
	if errors.Is(err, store.ErrNotFound) {
		v.Known = false
		return p.render(c, http.StatusOK, "manage", "Your pre-saves", v)
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
		it := p.item(ps, rp)
		if h, ok := horizons[ps.Provider]; ok && it.Open {
			it.AccessUntil, _ = formatWhen(h, ps.FanZone)
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
	return p.render(c, http.StatusOK, "manage", "Your pre-saves", v)
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
	// Agreed is the wording the fan agreed to (the recorded version),
	// for this provider only.
	Agreed template.HTML
}

// presave renders the confirmation: what will happen, when, and the
// ways to change one's mind.
func (p *page) presave(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	ps, r, err := p.ownPresave(c)
	if err != nil {
		return err
	}
	v := presavePageView{presaveItem: p.item(ps, r)}
	if r != nil {
		if _, ok := p.wordings[ps.ConsentVersion]; ok {
			offers := []offer{{Name: ps.Provider, Label: providerLabel(ps.Provider), Actions: ps.Actions,
				PlaylistName: r.Target(ps.Provider).MyPlaylist.Name}}
			if v.Agreed, err = p.consentText(ps.ConsentVersion, *r, ps.FanZone, offers); err != nil {
				return err
			}
		}
	}
	title := "Your pre-save"
	if v.Open {
		title = "You're all set"
	}
	return p.render(c, http.StatusOK, "presave", title, v)
}

// confirmView is a confirmation step before a state-changing form.
type confirmView struct {
	Heading, Text  string
	Action, Button string
	Cancel         string
	Danger         bool
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
	it := p.item(ps, r)
	return p.confirm(c, confirmView{
		Heading: "Withdraw this pre-save?",
		Text: "We will not act on your " + it.Label + " account for “" + it.Title + "”. If no other pre-save needs it, " +
			"we delete our access to your " + it.Label + " account right away.",
		Action: "/me/presaves/" + ps.ID.String() + "/withdraw", Button: "Withdraw pre-save",
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
	label := providerLabel(pr.Name())
	return p.confirm(c, confirmView{
		Heading: "Disconnect " + label + "?",
		Text: "Every pending pre-save on " + label + " is withdrawn and we delete our access to your " + label +
			" account now. You can connect again later.",
		Action: "/me/connections/" + string(pr.Name()) + "/disconnect", Button: "Disconnect " + label, Cancel: "/me",
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
	return p.confirm(c, confirmView{
		Heading: "Delete your account?",
		Text: "This withdraws every pending pre-save, deletes our access to your connected accounts and erases " +
			"everything we hold about you. It cannot be undone. You may want to download your data first.",
		Action: "/me/delete", Button: "Delete my account", Cancel: "/me", Danger: true,
	})
}

func (p *page) deleteFan(c echo.Context) error {
	if _, err := p.s.app.DeleteFan(ctxOf(c), fanOf(c)); err != nil {
		return err
	}
	p.s.clearFanCookie(c)
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return p.render(c, http.StatusOK, "message", "Your account is deleted", messageView{
		Title:   "Your account is deleted",
		Message: "We withdrew your pending pre-saves, deleted our access to your accounts and erased your data.",
		Back:    "/me", BackLabel: "Done",
	})
}

// export is the fan's data (GET /v1/me's answer) as a file download.
func (p *page) export(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="presave-my-data.json"`)
	return p.s.exportMe(c)
}
