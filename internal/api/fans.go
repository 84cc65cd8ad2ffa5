package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/presave/presave/internal/presave"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// ConsentView is the consent record of a pre-save.
type ConsentView struct {
	ConsentedAt time.Time `json:"consented_at"`
	Version     string    `json:"version"`
	// Locale is the locale of the wording agreed to.
	Locale string `json:"locale"`
	Zone   string `json:"zone"`
	// ClientIPPrefix is the fan's address truncated to /24 or /48.
	ClientIPPrefix string `json:"client_ip_prefix,omitempty"`
}

// ReleaseRef names a release in a fan's export.
type ReleaseRef struct {
	Slug   string `json:"slug"`
	Title  string `json:"title"`
	Artist string `json:"artist"`
}

// PresaveView is a pre-save as a fan sees it.
type PresaveView struct {
	ID        uuid.UUID      `json:"id"`
	ReleaseID uuid.UUID      `json:"release_id"`
	Release   *ReleaseRef    `json:"release,omitempty"`
	Provider  providers.Name `json:"provider"`
	// AccountID is the provider account the fan consented with; the
	// pre-save acts on that account only.
	AccountID string                                  `json:"account_id,omitempty"`
	Actions   []providers.Action                      `json:"actions"`
	Status    store.PresaveStatus                     `json:"status"`
	DueAt     time.Time                               `json:"due_at"`
	Consent   ConsentView                             `json:"consent"`
	Results   map[providers.Action]store.ActionResult `json:"results"`
	// DeliverableUntil: an open pre-save can be delivered if it is due by
	// then (its grant's horizon); absent when the provider sets no limit
	// or no grant is stored.
	DeliverableUntil *time.Time `json:"deliverable_until,omitempty"`
	// OwnPlaylistID is the playlist presave created in the fan's account
	// (add_to_my_playlist), once it exists.
	OwnPlaylistID string     `json:"own_playlist_id,omitempty"`
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"last_error,omitempty"`
	CompletedAt   *time.Time `json:"completed_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

func presaveView(p store.Presave, r *store.Release) PresaveView {
	v := PresaveView{
		ID: p.ID, ReleaseID: p.ReleaseID, Provider: p.Provider, AccountID: p.AccountID, Actions: p.Actions, Status: p.Status, DueAt: p.DueAt,
		Consent: ConsentView{ConsentedAt: p.ConsentedAt, Version: p.ConsentVersion, Locale: p.ConsentLocale, Zone: p.FanZone},
		Results: p.Results, OwnPlaylistID: p.OwnPlaylistID,
		Attempts: p.Attempts, LastError: p.LastError, CompletedAt: p.CompletedAt, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	if p.ClientIPPrefix != nil {
		v.Consent.ClientIPPrefix = p.ClientIPPrefix.String()
	}
	if v.Results == nil {
		v.Results = map[providers.Action]store.ActionResult{}
	}
	if r != nil {
		v.Release = &ReleaseRef{Slug: r.Slug, Title: r.Title, Artist: r.Artist}
	}
	return v
}

// FanExportView is everything presave holds about a fan: accounts by
// provider ID, which providers hold a stored grant (never the grant), and
// every pre-save with its consent record and results.
type FanExportView struct {
	// About says what the file is, in the fan's language.
	About        string        `json:"about"`
	FanID        uuid.UUID     `json:"fan_id"`
	CreatedAt    time.Time     `json:"created_at"`
	Accounts     []AccountView `json:"accounts"`
	StoredGrants []GrantView   `json:"stored_grants"`
	Presaves     []PresaveView `json:"presaves"`
}

// AccountView is a linked provider account: its provider ID only.
type AccountView struct {
	Provider    providers.Name `json:"provider"`
	AccountID   string         `json:"account_id"`
	ConnectedAt time.Time      `json:"connected_at"`
}

// GrantView says that a grant is stored, never the grant itself.
type GrantView struct {
	Provider     providers.Name `json:"provider"`
	Scopes       []string       `json:"scopes"`
	AuthorizedAt time.Time      `json:"authorized_at"`
	StoredAt     time.Time      `json:"stored_at"`
	// DeliverableUntil is the latest a pre-save may be due on this grant
	// (presave.Horizon: Spotify's six months less a day); absent when
	// the provider sets no limit.
	DeliverableUntil *time.Time `json:"deliverable_until,omitempty"`
	// Storefront is the fan's Apple Music storefront, kept with the
	// grant (absent elsewhere).
	Storefront string `json:"storefront,omitempty"`
}

func (s *Server) exportMe(c echo.Context) error {
	ctx := ctxOf(c)
	ex, err := s.store.ExportFan(ctx, fanOf(c))
	if errors.Is(err, store.ErrNotFound) {
		return errFanGone
	}
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, 0, len(ex.Presaves))
	for _, p := range ex.Presaves {
		ids = append(ids, p.ReleaseID)
	}
	releases, err := s.store.ReleasesByID(ctx, ids)
	if err != nil {
		return err
	}
	out := FanExportView{About: s.localeOf(c).Sprintf("export.about"), FanID: ex.FanID, CreatedAt: ex.CreatedAt,
		Accounts: []AccountView{}, StoredGrants: []GrantView{}, Presaves: []PresaveView{}}
	for _, a := range ex.Accounts {
		out.Accounts = append(out.Accounts, AccountView{Provider: a.Provider, AccountID: a.AccountID, ConnectedAt: a.CreatedAt})
	}
	horizons := s.horizons(ex.Tokens)
	for _, t := range ex.Tokens {
		g := GrantView{Provider: t.Provider, Scopes: orEmpty(t.Scopes), AuthorizedAt: t.AuthorizedAt, StoredAt: t.CreatedAt, Storefront: t.Storefront}
		if h, ok := horizons[t.Provider]; ok {
			g.DeliverableUntil = &h
		}
		out.StoredGrants = append(out.StoredGrants, g)
	}
	for _, p := range ex.Presaves {
		var rp *store.Release
		if r, ok := releases[p.ReleaseID]; ok {
			rp = &r
		}
		v := presaveView(p, rp)
		if h, ok := horizons[p.Provider]; ok && p.Status.Open() {
			v.DeliverableUntil = &h
		}
		out.Presaves = append(out.Presaves, v)
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, out)
}

// horizons is, by provider, the latest a pre-save may be due on the
// fan's stored grant (presave.Horizon), for the providers that set one.
func (s *Server) horizons(tokens []store.ExportedToken) map[providers.Name]time.Time {
	out := map[providers.Name]time.Time{}
	for _, t := range tokens {
		if prov, ok := s.providers.Get(t.Provider); ok {
			if h := presave.Horizon(prov, t.AuthorizedAt); !h.IsZero() {
				out[t.Provider] = h
			}
		}
	}
	return out
}

var (
	errFanGone         error = presave.ErrFanGone
	errPresaveNotFound error = presave.ErrPresaveNotFound
)

func (s *Server) withdraw(c echo.Context) error {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return errPresaveNotFound
	}
	ctx := ctxOf(c)
	done, err := s.app.Withdraw(ctx, fanOf(c), id)
	if err != nil {
		return err
	}
	p, err := s.store.Presave(ctx, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		Presave      PresaveView `json:"presave"`
		GrantDeleted bool        `json:"grant_deleted"`
		// AttemptRunning: an attempt was under way; the action it had
		// started may complete (see the pre-save's results in the export).
		AttemptRunning bool `json:"attempt_running"`
	}{presaveView(p, nil), done.GrantsDeleted > 0, done.Running > 0})
}

func (s *Server) disconnect(c echo.Context) error {
	p, err := s.app.Provider(c.Param("provider"))
	if err != nil {
		return err
	}
	done, err := s.app.Disconnect(ctxOf(c), fanOf(c), p.Name())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		Provider     providers.Name `json:"provider"`
		Cancelled    int            `json:"cancelled"`
		GrantDeleted bool           `json:"grant_deleted"`
		// Running counts the cancelled pre-saves that had an attempt
		// under way (at most one action each may still complete).
		Running int `json:"running"`
	}{p.Name(), done.Cancelled, done.GrantsDeleted > 0, done.Running})
}

func (s *Server) deleteMe(c echo.Context) error {
	done, err := s.app.DeleteFan(ctxOf(c), fanOf(c))
	if err != nil {
		return err
	}
	s.clearFanCookie(c)
	return c.JSON(http.StatusOK, struct {
		Deleted      bool `json:"deleted"`
		Cancelled    int  `json:"cancelled"`
		GrantsPurged int  `json:"grants_purged"`
		// Running counts the pre-saves that had an attempt under way (at
		// most one action each may still complete; nothing of it is kept).
		Running int `json:"running"`
	}{true, done.Cancelled, done.GrantsDeleted, done.Running})
}
