package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/wire"
)

// TestPlanAgreesWithTheDrain: GET /v1/releases/{id}/plan tells, before
// the day, what the release's pre-saves will take; a real worker then
// drains the release, and the provider requests the fake answered and
// the YouTube units it counted are the plan's. A grant that expires
// before the release counts as undeliverable.
func TestPlanAgreesWithTheDrain(t *testing.T) {
	t.Parallel()
	// The API plans with a budget of 300 units a Pacific day.
	b := setup(t, func(c *api.Config) { c.Queue.YouTubeDailyUnits = 300 })
	rel := b.createRelease(releaseBody("planned", time.Now().Add(4*time.Second)))
	var fans []connected
	for _, user := range []string{"plan-a", "plan-b", "plan-c"} {
		fans = append(fans, b.connect(providers.Spotify, rel.Slug, user, ""))
	}
	for _, user := range []string{"plan-d", "plan-e"} {
		fans = append(fans, b.connect(providers.YouTube, rel.Slug, user, ""))
	}
	plan := func() wire.Plan {
		t.Helper()
		var p wire.Plan
		b.admin(http.MethodGet, "/v1/releases/"+rel.ID+"/plan", nil, http.StatusOK).decode(t, &p)
		return p
	}

	p := plan()
	sp, yt := p.Providers["spotify"], p.Providers["youtube"]
	if sp.Presaves != 3 || sp.Actions["save"] != 3 || sp.Actions["follow"] != 3 || sp.Actions["follow_playlist"] != 3 || sp.Actions["add_to_my_playlist"] != 3 {
		t.Errorf("spotify plan = %+v", sp)
	}
	if yt.Presaves != 2 || yt.Actions["like"] != 2 || yt.Actions["subscribe"] != 2 || yt.Actions["add_to_my_playlist"] != 2 {
		t.Errorf("youtube plan = %+v", yt)
	}
	// like and subscribe: one unchecked write, 50 units each;
	// add_to_my_playlist 102: 404 units, two days of 300.
	if yt.Units != 2*(50+50+102) || yt.DailyUnits != 300 || yt.QuotaDays != 2 || sp.Units != 0 {
		t.Errorf("units: spotify %d, youtube %d of %d (%d days)", sp.Units, yt.Units, yt.DailyUnits, yt.QuotaDays)
	}
	if sp.Undeliverable != 0 || yt.Undeliverable != 0 || sp.RatePerSecond != 20 || sp.DrainSeconds != float64(sp.Calls)/20 {
		t.Errorf("spotify plan = %+v, youtube %+v", sp, yt)
	}
	if got := warningCodes(p.Warnings); !slices.Equal(got, []string{"youtube quota_days"}) {
		t.Errorf("plan warnings = %v, want the YouTube quota days", got)
	}

	// A Spotify grant authorized seven months ago is dead by the release.
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := b.st.Pool().Exec(b.ctx(), sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`UPDATE provider_tokens SET authorized_at = authorized_at - interval '7 months' WHERE fan_id = $1`, fans[0].FanID)
	if got := plan().Providers["spotify"]; got.Undeliverable != 1 {
		t.Errorf("undeliverable after ageing one grant = %d, want 1", got.Undeliverable)
	}
	exec(`UPDATE provider_tokens SET authorized_at = authorized_at + interval '7 months' WHERE fan_id = $1`, fans[0].FanID)

	before := b.fake.CallCounts()
	unitsBefore := b.fake.QuotaUsed("presave-dev")
	b.startWorker(map[string]string{"SPOTIFY_RPS": "1000", "YOUTUBE_RPS": "1000"})
	waitUntil(t, time.Minute, "the release to drain", func() bool {
		return b.count("presaves", "release_id = $1 AND status = 'done'", rel.ID) == len(fans)
	})
	sent := map[string]int{}
	for k, n := range b.fake.CallCounts() {
		if n -= before[k]; n == 0 {
			continue
		}
		switch {
		case strings.Contains(k, " /v1/"):
			sent["spotify"] += n
		case strings.Contains(k, " /youtube/v3/"):
			sent["youtube"] += n
		}
	}
	if sent["spotify"] != sp.Calls || sent["youtube"] != yt.Calls {
		t.Errorf("the drain sent %v provider requests, the plan said spotify %d, youtube %d", sent, sp.Calls, yt.Calls)
	}
	if used := b.fake.QuotaUsed("presave-dev") - unitsBefore; used != yt.Units {
		t.Errorf("the drain spent %d YouTube units, the plan said %d", used, yt.Units)
	}
	if after := plan(); after.Providers["spotify"].Presaves != 0 || after.Providers["youtube"].Calls != 0 {
		t.Errorf("plan after the drain = %+v", after)
	}
}
