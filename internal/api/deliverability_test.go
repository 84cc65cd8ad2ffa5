package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presave/presave/internal/presave"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/providers/spotify"
)

// TestMovePastTheHorizon: moving a release later than some pre-saves'
// grants last (Spotify: six months from the authorization) answers 409
// with how many, and changes nothing; with accept_undeliverable those
// pre-saves become needs_reconnect, their tokens go at once, the others
// move; the fan sees it on /me and on the release page, and connecting
// again reopens the pre-save. The export tells every open pre-save
// until when it can be delivered.
func TestMovePastTheHorizon(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	rel := b.createRelease(releaseBody("moves-far", time.Now().Add(30*24*time.Hour)))
	// The fan in this browser connects Spotify on the page; two more fans
	// through the API.
	jar := browserJar{}
	cb := b.page(jar, http.MethodGet, registry.CallbackPath(providers.Spotify)+"?"+b.consent(b.pageStart(jar, rel.Slug, providers.Spotify), "old-grant").Encode(), nil)
	if cb.Status != http.StatusSeeOther && cb.Status != http.StatusFound {
		t.Fatalf("page callback: HTTP %d %s", cb.Status, cb.Body)
	}
	fresh := b.connect(providers.Spotify, rel.Slug, "fresh-grant", "")
	yt := b.connect(providers.YouTube, rel.Slug, "yt-fan", "")
	var oldFan string
	if err := b.st.Pool().QueryRow(b.ctx(), `SELECT fan_id::text FROM fan_accounts WHERE account_id = 'old-grant'`).Scan(&oldFan); err != nil {
		t.Fatal(err)
	}
	// That fan authorized Spotify five months ago: their grant ends in
	// about a month.
	if _, err := b.st.Pool().Exec(b.ctx(), `UPDATE provider_tokens SET authorized_at = now() - interval '5 months' WHERE fan_id = $1`, oldFan); err != nil {
		t.Fatal(err)
	}

	// /me tells the fan until when their Spotify access lasts.
	var authorized time.Time
	if err := b.st.Pool().QueryRow(b.ctx(), `SELECT authorized_at FROM provider_tokens WHERE fan_id = $1`, oldFan).Scan(&authorized); err != nil {
		t.Fatal(err)
	}
	lasts := spotify.AddMonths(authorized.UTC(), 6).Add(-presave.GrantMargin)
	paris, _ := time.LoadLocation("Europe/Paris")
	wantDay := lasts.In(paris).Format("Monday 2 January 2006")
	if me := b.page(jar, http.MethodGet, "/me", nil); !strings.Contains(string(me.Body), "your Spotify access lasts until "+wantDay) {
		t.Errorf("/me does not say until when the access lasts (%s): %s", wantDay, me.Body)
	}

	later := time.Now().Add(90 * 24 * time.Hour).UTC().Format(time.RFC3339)
	before := b.fingerprint()
	r := b.admin(http.MethodPatch, "/v1/releases/"+rel.ID, map[string]any{"release_at": later}, http.StatusConflict)
	if r.errorCode(t) != "undeliverable_presaves" || !strings.Contains(string(r.Body), "1 pre-save could not") {
		t.Errorf("move past the horizon: %s", r.Body)
	}
	b.sameFingerprint(before, b.fingerprint(), "a refused move")

	var moved struct {
		Rescheduled    *int `json:"rescheduled"`
		NeedsReconnect *int `json:"needs_reconnect"`
	}
	b.admin(http.MethodPatch, "/v1/releases/"+rel.ID, map[string]any{"release_at": later, "accept_undeliverable": true}, http.StatusOK).decode(t, &moved)
	if moved.NeedsReconnect == nil || *moved.NeedsReconnect != 1 || moved.Rescheduled == nil || *moved.Rescheduled != 3 {
		t.Errorf("accepted move: rescheduled %v, needs_reconnect %v; want 3 and 1", moved.Rescheduled, moved.NeedsReconnect)
	}
	if n := b.count("presaves", "fan_id = $1 AND status = 'needs_reconnect' AND last_error = 'grant_expires_before_release'", oldFan); n != 1 {
		t.Errorf("the old grant's pre-save is not needs_reconnect (%d)", n)
	}
	if n := b.count("provider_tokens", "fan_id = $1", oldFan); n != 0 {
		t.Errorf("the old grant is still stored")
	}
	for _, c := range []connected{fresh, yt} {
		if p := b.presave(c.Presave.ID); p.Status != "pending" || p.Generation != 2 {
			t.Errorf("%s pre-save after the move: %+v", c.Presave.Provider, p)
		}
	}

	// The fan sees it on /me and on the release page.
	me := b.page(jar, http.MethodGet, "/me", nil)
	if !strings.Contains(string(me.Body), "connect Spotify again") || !strings.Contains(string(me.Body), `href="/r/moves-far"`) {
		t.Errorf("/me does not ask to connect again: %s", me.Body)
	}
	page := b.page(jar, http.MethodGet, "/r/moves-far", nil)
	if !strings.Contains(string(page.Body), "connect Spotify again below to keep your pre-save") {
		t.Errorf("the release page does not ask to connect again: %s", page.Body)
	}

	// The export of a fan with an open pre-save says until when it can
	// be delivered: six calendar months after the authorization, less a day.
	var ex struct {
		StoredGrants []struct {
			AuthorizedAt     time.Time  `json:"authorized_at"`
			DeliverableUntil *time.Time `json:"deliverable_until"`
		} `json:"stored_grants"`
		Presaves []struct {
			DeliverableUntil *time.Time `json:"deliverable_until"`
		} `json:"presaves"`
	}
	b.do(req{method: http.MethodGet, path: "/v1/me", header: fanHeader(fresh.FanToken)}).decode(t, &ex)
	if len(ex.StoredGrants) != 1 || ex.StoredGrants[0].DeliverableUntil == nil || len(ex.Presaves) != 1 || ex.Presaves[0].DeliverableUntil == nil ||
		!ex.StoredGrants[0].DeliverableUntil.Equal(spotify.AddMonths(ex.StoredGrants[0].AuthorizedAt.UTC(), 6).Add(-presave.GrantMargin)) {
		t.Errorf("export: %+v", ex)
	}
	var ey struct {
		Presaves []struct {
			DeliverableUntil *time.Time `json:"deliverable_until"`
		} `json:"presaves"`
	}
	b.do(req{method: http.MethodGet, path: "/v1/me", header: fanHeader(yt.FanToken)}).decode(t, &ey)
	if len(ey.Presaves) != 1 || ey.Presaves[0].DeliverableUntil != nil {
		t.Errorf("a YouTube grant of a published app has no limit: %+v", ey)
	}

	// Connecting again keeps the pre-save: pending at the new time.
	cb = b.page(jar, http.MethodGet, registry.CallbackPath(providers.Spotify)+"?"+b.consent(b.pageStart(jar, rel.Slug, providers.Spotify), "old-grant").Encode(), nil)
	if cb.Status != http.StatusSeeOther && cb.Status != http.StatusFound {
		t.Fatalf("reconnect: HTTP %d %s", cb.Status, cb.Body)
	}
	if n := b.count("presaves", "fan_id = $1 AND status = 'pending' AND due_at = $2", oldFan, later); n != 1 {
		t.Errorf("the pre-save did not reopen at the new time")
	}
}
