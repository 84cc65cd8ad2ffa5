package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/presave/presave/internal/wire"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/queue"
)

type presaveRow struct {
	DueAt      time.Time
	Generation int
	Status     string
}

func (b *bundle) presave(id string) presaveRow {
	b.t.Helper()
	var p presaveRow
	if err := b.st.Pool().QueryRow(b.ctx(), `SELECT due_at, generation, status FROM presaves WHERE id = $1`, id).Scan(&p.DueAt, &p.Generation, &p.Status); err != nil {
		b.t.Fatal(err)
	}
	return p
}

func TestReleaseCreateReadListUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()
	r1 := b.createRelease(releaseBody("crud-one", at))
	if r1.Timing != "fixed" || !r1.ReleaseAt.Equal(at) || r1.Status != "scheduled" {
		t.Errorf("created = %+v", r1)
	}
	if got := r1.Actions; len(got["spotify"]) != 4 || len(got["youtube"]) != 3 {
		t.Errorf("actions offered = %v", got)
	}
	local := releaseBody("crud-local", at)
	delete(local, "release_at")
	local["release_date"] = at.AddDate(0, 0, 3).Format("2006-01-02")
	local["default_zone"] = "Asia/Tokyo"
	local["youtube"] = nil
	r2 := b.createRelease(local)
	if r2.Timing != "local" || r2.ReleaseDate != local["release_date"] || len(r2.Actions["youtube"]) != 0 {
		t.Errorf("local release = %+v", r2)
	}

	var page struct {
		Releases []wire.Release `json:"releases"`
		Next     *string        `json:"next"`
	}
	b.admin(http.MethodGet, "/v1/releases?limit=1", nil, http.StatusOK).decode(t, &page)
	if len(page.Releases) != 1 || page.Releases[0].ID != r2.ID || page.Next == nil {
		t.Fatalf("first page = %+v", page)
	}
	b.admin(http.MethodGet, "/v1/releases?limit=1&after="+*page.Next, nil, http.StatusOK).decode(t, &page)
	if len(page.Releases) != 1 || page.Releases[0].ID != r1.ID {
		t.Fatalf("second page = %+v", page)
	}

	var got wire.Release
	b.admin(http.MethodPatch, "/v1/releases/"+r1.ID, map[string]any{"title": "New Title", "youtube": map[string]any{"my_playlist": map[string]any{"name": ""}, "channel_id": ""}}, http.StatusOK).decode(t, &got)
	if got.YouTube.MyPlaylist != nil || got.YouTube.ChannelID != "" || got.YouTube.VideoID != ytVideo || len(got.Actions["youtube"]) != 1 || *got.Rescheduled != 0 {
		t.Errorf("patched = %+v", got)
	}
	r := b.admin(http.MethodGet, "/v1/releases/"+r1.ID, nil, http.StatusOK)
	var full map[string]any
	r.decode(t, &full)
	if full["title"] != "New Title" {
		t.Errorf("title = %v", full["title"])
	}
	// Switch to local timing.
	var switched wire.Release
	b.admin(http.MethodPatch, "/v1/releases/"+r1.ID, map[string]any{"release_date": at.AddDate(0, 0, 1).Format("2006-01-02"), "default_zone": "Europe/Paris"}, http.StatusOK).decode(t, &switched)
	if switched.Timing != "local" || switched.ReleaseAt != nil {
		t.Errorf("switched = %+v", switched)
	}
}

func TestReleaseTimeChangeMovesPendingPresaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("moving", time.Now().Add(5*time.Minute)))
	b.openGuards(rel)
	sp := b.connect(providers.Spotify, rel.Slug, "mover", "")
	yt := b.connect(providers.YouTube, rel.Slug, "", sp.FanToken)
	for _, c := range []connected{sp, yt} {
		if !c.Queued || !b.taskExists(queue.QueueFor(providers.Name(c.Presave.Provider)), queue.PresaveTaskID(uuid.MustParse(c.Presave.ID), 1)) {
			t.Fatalf("%s: not queued", c.Presave.Provider)
		}
	}

	// Later, beyond the relay window: due_at moves, generation bumps, the
	// old tasks leave the queue and the pre-saves wait in PostgreSQL.
	later := time.Now().Add(3 * time.Hour).Truncate(time.Second).UTC()
	var got wire.Release
	b.admin(http.MethodPatch, "/v1/releases/"+rel.ID, map[string]any{"release_at": later.Format(time.RFC3339)}, http.StatusOK).decode(t, &got)
	if got.Rescheduled == nil || *got.Rescheduled != 2 || got.Counts["spotify"]["pending"] != 1 || got.Counts["youtube"]["pending"] != 1 {
		t.Errorf("patch answer = %+v", got)
	}
	for _, c := range []connected{sp, yt} {
		p := b.presave(c.Presave.ID)
		if !p.DueAt.Equal(later) || p.Generation != 2 || p.Status != "pending" {
			t.Errorf("%s after moving later: %+v", c.Presave.Provider, p)
		}
		if b.taskExists(queue.QueueFor(providers.Name(c.Presave.Provider)), queue.PresaveTaskID(uuid.MustParse(c.Presave.ID), 1)) {
			t.Errorf("%s: the old task is still queued", c.Presave.Provider)
		}
	}

	// Back within the window: queued again under the new generation.
	sooner := time.Now().Add(7 * time.Minute).Truncate(time.Second).UTC()
	b.admin(http.MethodPatch, "/v1/releases/"+rel.ID, map[string]any{"release_at": sooner.Format(time.RFC3339)}, http.StatusOK)
	for _, c := range []connected{sp, yt} {
		p := b.presave(c.Presave.ID)
		if !p.DueAt.Equal(sooner) || p.Generation != 3 || p.Status != "enqueued" {
			t.Errorf("%s after moving sooner: %+v", c.Presave.Provider, p)
		}
		info, err := b.insp.GetTaskInfo(queue.QueueFor(providers.Name(c.Presave.Provider)), queue.PresaveTaskID(uuid.MustParse(c.Presave.ID), 3))
		if err != nil || !info.NextProcessAt.Equal(sooner) {
			t.Errorf("%s: new task %+v, %v", c.Presave.Provider, info, err)
		}
	}
}

func TestLocalReleaseDateChangeMovesEachFanToTheirMidnight(t *testing.T) {
	t.Parallel()
	b := setup(t)
	day := time.Now().AddDate(0, 0, 10)
	body := releaseBody("local-move", day)
	delete(body, "release_at")
	body["release_date"] = day.Format("2006-01-02")
	body["default_zone"] = "Europe/Paris"
	rel := b.createRelease(body)

	zones := map[string]string{"paris-fan": "Europe/Paris", "ny-fan": "America/New_York"}
	ids := map[string]string{}
	for user, zone := range zones {
		authURL := b.startURL(providers.Spotify, map[string]any{"release": rel.Slug, "consent": true, "zone": zone}, "")
		r := b.callback(providers.Spotify, b.consent(authURL, user), "")
		var c connected
		r.decode(t, &c)
		ids[user] = c.Presave.ID
	}
	newDay := day.AddDate(0, 0, 5)
	b.admin(http.MethodPatch, "/v1/releases/"+rel.ID, map[string]any{"release_date": newDay.Format("2006-01-02")}, http.StatusOK)
	for user, zone := range zones {
		loc, _ := time.LoadLocation(zone)
		want := time.Date(newDay.Year(), newDay.Month(), newDay.Day(), 0, 0, 0, 0, loc)
		if p := b.presave(ids[user]); !p.DueAt.Equal(want) || p.Generation != 2 {
			t.Errorf("%s: due_at %v gen %d, want %v gen 2", user, p.DueAt, p.Generation, want)
		}
	}
}

func TestCancelledReleaseCancelsItsPresaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("cancel-me", time.Now().Add(5*time.Minute)))
	other := b.createRelease(releaseBody("keeps-going", time.Now().Add(time.Hour)))
	a := b.connect(providers.Spotify, rel.Slug, "fan-a", "")
	ay := b.connect(providers.YouTube, rel.Slug, "", a.FanToken)
	c := b.connect(providers.YouTube, rel.Slug, "yt-c", "")
	c2 := b.connect(providers.YouTube, other.Slug, "yt-c", c.FanToken) // c's grant is still needed here

	var got wire.Release
	b.admin(http.MethodPost, "/v1/releases/"+rel.ID+"/cancel", nil, http.StatusOK).decode(t, &got)
	if got.Status != "cancelled" || got.Counts["spotify"]["cancelled"] != 1 || got.Counts["youtube"]["cancelled"] != 2 || got.Counts["youtube"]["enqueued"] != 0 {
		t.Errorf("cancel answer = %+v", got)
	}
	for _, p := range []connected{a, ay, c} {
		if st := b.presave(p.Presave.ID).Status; st != "cancelled" {
			t.Errorf("%s pre-save is %s", p.Presave.Provider, st)
		}
		if b.taskExists(queue.QueueFor(providers.Name(p.Presave.Provider)), queue.PresaveTaskID(uuid.MustParse(p.Presave.ID), 1)) {
			t.Errorf("%s task still queued", p.Presave.Provider)
		}
	}
	if n := b.count("provider_tokens", "fan_id = $1", a.FanID); n != 0 {
		t.Errorf("fan a's tokens are still stored (%d)", n)
	}
	if n := b.count("provider_tokens", "fan_id = $1", c.FanID); n != 1 {
		t.Errorf("fan c's token was purged although another release needs it")
	}
	if st := b.presave(c2.Presave.ID).Status; st != "pending" {
		t.Errorf("the other release's pre-save is %s", st)
	}
	if got := b.purgeTasks(); len(got) != 1 {
		t.Errorf("purge queue = %v, want fan a's youtube revocation", got)
	}

	// A cancelled release is closed.
	before := b.fingerprint()
	b.admin(http.MethodPost, "/v1/releases/"+rel.ID+"/cancel", nil, http.StatusOK) // idempotent
	if r := b.admin(http.MethodPatch, "/v1/releases/"+rel.ID, map[string]any{"title": "x"}, http.StatusConflict); r.errorCode(t) != "release_not_scheduled" {
		t.Errorf("patch cancelled: %s", r.Body)
	}
	r := b.do(req{method: http.MethodPost, path: "/v1/connect/spotify/start", json: map[string]any{"release": rel.Slug, "consent": true}})
	if r.Status != http.StatusConflict || r.errorCode(t) != "release_not_open" {
		t.Errorf("start on a cancelled release: HTTP %d %s", r.Status, r.Body)
	}
	b.sameFingerprint(before, b.fingerprint(), "requests on a cancelled release")
}

// TestAPIQueuedTasksHonourTheQueueSettings: the tasks the API queues (a
// consent due soon, a release moved into the window) carry the operator's
// PRESAVE_MAX_RETRY and PRESAVE_TIMEOUT, read by the same loader as the
// workers', not defaults of their own.
func TestAPIQueuedTasksHonourTheQueueSettings(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"PRESAVE_MAX_RETRY": "7", "PRESAVE_TIMEOUT": "45s"}
	qc, err := queue.LoadConfig(config.Env(func(k string) string { return vars[k] }))
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(c *api.Config) { c.Queue = qc })
	check := func(what, p, id string, generation int) {
		t.Helper()
		info, err := b.insp.GetTaskInfo(queue.QueueFor(providers.Name(p)), queue.PresaveTaskID(uuid.MustParse(id), generation))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if info.MaxRetry != 7 || info.Timeout != 45*time.Second {
			t.Errorf("%s: task has MaxRetry %d and Timeout %s, want 7 and 45s", what, info.MaxRetry, info.Timeout)
		}
	}
	soon := b.createRelease(releaseBody("queue-settings-soon", time.Now().Add(5*time.Minute)))
	b.openGuards(soon)
	c := b.connect(providers.Spotify, soon.Slug, "qs-fan", "")
	if !c.Queued {
		t.Fatalf("a consent due in 5 minutes was not queued")
	}
	check("consent due soon", c.Presave.Provider, c.Presave.ID, 1)

	later := b.createRelease(releaseBody("queue-settings-later", time.Now().Add(24*time.Hour)))
	m := b.connect(providers.YouTube, later.Slug, "qs-fan-2", "")
	b.admin(http.MethodPatch, "/v1/releases/"+later.ID, map[string]any{"release_at": time.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339)}, http.StatusOK)
	check("release moved into the window", m.Presave.Provider, m.Presave.ID, 2)
}
