package api_test

import (
	"bytes"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/queue"
)

func TestExportShowsEverythingButNoSecret(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("export", time.Now().Add(time.Hour)))
	sp := b.connect(providers.Spotify, rel.Slug, "export-fan", "")
	yt := b.connect(providers.YouTube, rel.Slug, "", sp.FanToken)
	fan := uuid.MustParse(sp.FanID)

	var secrets []string
	for _, p := range providers.Names {
		secrets = append(secrets, b.issued(fan, p)...)
	}
	secrets = append(secrets, sp.FanToken)

	r := b.do(req{method: http.MethodGet, path: "/v1/me", header: fanHeader(sp.FanToken)})
	if r.Status != http.StatusOK {
		t.Fatalf("export: HTTP %d %s", r.Status, r.Body)
	}
	for _, s := range secrets {
		if s == "" || bytes.Contains(r.Body, []byte(s)) {
			t.Errorf("the export holds a secret (or a secret is empty): %q", s)
		}
	}
	var ex struct {
		FanID    string `json:"fan_id"`
		Accounts []struct {
			Provider  string `json:"provider"`
			AccountID string `json:"account_id"`
		} `json:"accounts"`
		StoredGrants []struct {
			Provider string   `json:"provider"`
			Scopes   []string `json:"scopes"`
		} `json:"stored_grants"`
		Presaves []struct {
			ID       string            `json:"id"`
			Provider string            `json:"provider"`
			Release  map[string]string `json:"release"`
			Consent  map[string]string `json:"consent"`
			Results  map[string]any    `json:"results"`
			Status   string            `json:"status"`
		} `json:"presaves"`
	}
	r.decode(t, &ex)
	if ex.FanID != sp.FanID || len(ex.Accounts) != 2 || len(ex.StoredGrants) != 2 || len(ex.Presaves) != 2 {
		t.Fatalf("export = %s", r.Body)
	}
	if ex.Accounts[0].Provider != "spotify" || ex.Accounts[0].AccountID != "export-fan" || ex.Accounts[1].AccountID == "" {
		t.Errorf("accounts = %+v", ex.Accounts)
	}
	for _, p := range ex.Presaves {
		if p.Release["slug"] != "export" || p.Consent["version"] != "test-v1" || p.Consent["consented_at"] == "" || p.Results == nil {
			t.Errorf("pre-save in export = %+v", p)
		}
	}
	if ex.Presaves[0].ID != sp.Presave.ID || ex.Presaves[1].ID != yt.Presave.ID {
		t.Errorf("export pre-saves are not the fan's")
	}

	// The cookie works as well as the header.
	r = b.do(req{method: http.MethodGet, path: "/v1/me", header: map[string]string{"Cookie": "presave_fan=" + sp.FanToken}})
	if r.Status != http.StatusOK {
		t.Errorf("export with the cookie: HTTP %d", r.Status)
	}
}

func TestWithdrawCancelsAndPurgesWhenUnneeded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	soon := b.createRelease(releaseBody("soon", time.Now().Add(5*time.Minute)))
	b.openGuards(soon)
	later := b.createRelease(releaseBody("later", time.Now().Add(time.Hour)))
	first := b.connect(providers.YouTube, soon.Slug, "yt-first", "")
	if !first.Queued || !b.taskExists(queue.QueueYouTube, queue.PresaveTaskID(uuid.MustParse(first.Presave.ID), 1)) {
		t.Fatalf("a pre-save due within the relay window was not queued: %+v", first)
	}
	second := b.connect(providers.YouTube, later.Slug, "yt-first", first.FanToken)
	fan := uuid.MustParse(first.FanID)
	withdraw := func(tok, id string) response {
		return b.do(req{method: http.MethodDelete, path: "/v1/me/presaves/" + id, header: fanHeader(tok)})
	}

	// The token is still needed by the other pre-save: kept.
	r := withdraw(first.FanToken, first.Presave.ID)
	var out struct {
		Presave      struct{ Status string } `json:"presave"`
		GrantDeleted bool                    `json:"grant_deleted"`
	}
	r.decode(t, &out)
	if r.Status != http.StatusOK || out.Presave.Status != "cancelled" || out.GrantDeleted {
		t.Errorf("first withdraw: HTTP %d %s", r.Status, r.Body)
	}
	if b.taskExists(queue.QueueYouTube, queue.PresaveTaskID(uuid.MustParse(first.Presave.ID), 1)) {
		t.Errorf("the withdrawn pre-save's task is still queued")
	}
	if n := b.count("provider_tokens", "fan_id = $1", fan); n != 1 {
		t.Errorf("provider_tokens = %d, want 1 (still needed)", n)
	}
	if len(b.purgeTasks()) != 0 {
		t.Errorf("a purge was queued while the token is still needed")
	}

	// The last pre-save needing it: the token is purged at once and its
	// revocation queued.
	r = withdraw(first.FanToken, second.Presave.ID)
	r.decode(t, &out)
	if r.Status != http.StatusOK || out.Presave.Status != "cancelled" || !out.GrantDeleted {
		t.Errorf("second withdraw: HTTP %d %s", r.Status, r.Body)
	}
	if n := b.count("provider_tokens", "fan_id = $1", fan); n != 0 {
		t.Errorf("provider_tokens = %d, want 0", n)
	}
	var rev string
	if err := b.st.Pool().QueryRow(b.ctx(), `SELECT id::text FROM token_revocations WHERE provider = 'youtube'`).Scan(&rev); err != nil {
		t.Fatalf("no revocation row: %v", err)
	}
	if got := b.purgeTasks(); !slices.Equal(got, []string{rev}) {
		t.Errorf("purge queue = %v, want [%s]", got, rev)
	}

	// Withdrawing again changes nothing; unknown pre-saves are 404.
	before := b.fingerprint()
	if r := withdraw(first.FanToken, second.Presave.ID); r.Status != http.StatusOK {
		t.Errorf("repeated withdraw: HTTP %d %s", r.Status, r.Body)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if r := withdraw(first.FanToken, id); r.Status != http.StatusNotFound || r.errorCode(t) != "presave_not_found" {
			t.Errorf("withdraw %s: HTTP %d %s", id, r.Status, r.Body)
		}
	}
	b.sameFingerprint(before, b.fingerprint(), "repeated withdraw")
}

func TestDisconnectCancelsDeletesAndRevokes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("disconnect", time.Now().Add(time.Hour)))
	sp := b.connect(providers.Spotify, rel.Slug, "dc-fan", "")
	yt := b.connect(providers.YouTube, rel.Slug, "", sp.FanToken)
	fan := uuid.MustParse(sp.FanID)

	r := b.do(req{method: http.MethodDelete, path: "/v1/me/connections/youtube", header: fanHeader(sp.FanToken)})
	var out struct {
		Cancelled    int  `json:"cancelled"`
		GrantDeleted bool `json:"grant_deleted"`
	}
	r.decode(t, &out)
	if r.Status != http.StatusOK || out.Cancelled != 1 || !out.GrantDeleted {
		t.Fatalf("disconnect: HTTP %d %s", r.Status, r.Body)
	}
	if n := b.count("presaves", "id = $1 AND status = 'cancelled'", yt.Presave.ID); n != 1 {
		t.Errorf("the youtube pre-save was not cancelled")
	}
	if n := b.count("provider_tokens", "fan_id = $1 AND provider = 'youtube'", fan); n != 0 {
		t.Errorf("the youtube token is still stored")
	}
	if n := b.count("fan_accounts", "fan_id = $1 AND provider = 'youtube'", fan); n != 0 {
		t.Errorf("the youtube account is still linked")
	}
	if got := b.purgeTasks(); len(got) != 1 {
		t.Errorf("purge queue = %v, want the youtube revocation", got)
	}
	// Spotify is untouched.
	if n := b.count("presaves", "id = $1 AND status = 'pending'", sp.Presave.ID); n != 1 {
		t.Errorf("the spotify pre-save changed")
	}
	if n := b.count("provider_tokens", "fan_id = $1 AND provider = 'spotify'", fan); n != 1 {
		t.Errorf("the spotify token is gone")
	}

	// Spotify has no revoke endpoint: the token is deleted, nothing queued.
	r = b.do(req{method: http.MethodDelete, path: "/v1/me/connections/spotify", header: fanHeader(sp.FanToken)})
	if r.Status != http.StatusOK {
		t.Fatalf("disconnect spotify: HTTP %d %s", r.Status, r.Body)
	}
	if n := b.count("provider_tokens", ""); n != 0 {
		t.Errorf("provider_tokens = %d, want 0", n)
	}
	if got := b.purgeTasks(); len(got) != 1 {
		t.Errorf("purge queue = %v, want only the youtube revocation", got)
	}
	if r := b.do(req{method: http.MethodDelete, path: "/v1/me/connections/myspace", header: fanHeader(sp.FanToken)}); r.Status != http.StatusNotFound || r.errorCode(t) != "unknown_provider" {
		t.Errorf("unknown provider: HTTP %d %s", r.Status, r.Body)
	}
}

func TestDeleteAccountRemovesEverything(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("delete-me", time.Now().Add(5*time.Minute)))
	b.openGuards(rel)
	sp := b.connect(providers.Spotify, rel.Slug, "delete-fan", "")
	yt := b.connect(providers.YouTube, rel.Slug, "", sp.FanToken)
	other := b.connect(providers.Spotify, rel.Slug, "stays", "")
	fan := uuid.MustParse(sp.FanID)

	r := b.do(req{method: http.MethodDelete, path: "/v1/me", header: fanHeader(sp.FanToken)})
	if r.Status != http.StatusOK {
		t.Fatalf("delete: HTTP %d %s", r.Status, r.Body)
	}
	if ck, ok := r.cookieValue("presave_fan"); !ok || ck.MaxAge >= 0 {
		t.Errorf("the fan cookie was not cleared: %+v", ck)
	}
	for _, table := range []string{"fans", "fan_accounts", "fan_sessions", "provider_tokens", "presaves"} {
		col := "fan_id"
		if table == "fans" {
			col = "id"
		}
		if n := b.count(table, col+" = $1", fan); n != 0 {
			t.Errorf("%s still holds %d rows about the deleted fan", table, n)
		}
	}
	for _, ps := range []connected{sp, yt} {
		id := uuid.MustParse(ps.Presave.ID)
		if b.taskExists(queue.QueueFor(providers.Name(ps.Presave.Provider)), queue.PresaveTaskID(id, 1)) {
			t.Errorf("the %s task of the deleted fan is still queued", ps.Presave.Provider)
		}
	}
	if got := b.purgeTasks(); len(got) != 1 {
		t.Errorf("purge queue = %v, want the youtube revocation", got)
	}
	// The other fan is untouched.
	if n := b.count("presaves", "id = $1 AND status = 'enqueued'", other.Presave.ID); n != 1 {
		t.Errorf("another fan's pre-save changed")
	}

	for _, rq := range []req{
		{method: http.MethodDelete, path: "/v1/me", header: fanHeader(sp.FanToken)},
		{method: http.MethodGet, path: "/v1/me", header: fanHeader(sp.FanToken)},
		{method: http.MethodGet, path: "/v1/me", header: map[string]string{"Cookie": "presave_fan=" + sp.FanToken}},
	} {
		if r := b.do(rq); r.Status != http.StatusUnauthorized || r.errorCode(t) != "fan_token_invalid" {
			t.Errorf("%s %s after deletion: HTTP %d %s", rq.method, rq.path, r.Status, r.Body)
		}
	}
}

func TestFanCannotTouchAnotherFansData(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("isolation", time.Now().Add(time.Hour)))
	alice := b.connect(providers.Spotify, rel.Slug, "alice", "")
	bob := b.connect(providers.Spotify, rel.Slug, "bob", "")

	before := b.fingerprint()
	for _, rq := range []struct {
		r          req
		status     int
		code, what string
	}{
		{req{method: http.MethodDelete, path: "/v1/me/presaves/" + alice.Presave.ID, header: fanHeader(bob.FanToken)}, 404, "presave_not_found", "bob withdraws alice's pre-save"},
		{req{method: http.MethodDelete, path: "/v1/me/presaves/" + alice.Presave.ID, header: map[string]string{"Cookie": "presave_fan=" + bob.FanToken}}, 404, "presave_not_found", "bob's cookie withdraws alice's pre-save"},
		{req{method: http.MethodDelete, path: "/v1/me/presaves/" + alice.Presave.ID}, 401, "fan_token_missing", "anonymous withdraw"},
		{req{method: http.MethodDelete, path: "/v1/me/presaves/" + alice.Presave.ID, header: fanHeader(alice.FanToken + "x")}, 401, "fan_token_invalid", "altered token"},
		{req{method: http.MethodDelete, path: "/v1/me/presaves/" + alice.Presave.ID, header: fanHeader(adminToken)}, 401, "fan_token_invalid", "admin token as fan token"},
		{req{method: http.MethodGet, path: "/v1/releases", header: fanHeader(alice.FanToken)}, 401, "admin_token_invalid", "fan token on an admin route"},
	} {
		r := b.do(rq.r)
		if r.Status != rq.status || r.errorCode(t) != rq.code {
			t.Errorf("%s: HTTP %d %s, want %d %s", rq.what, r.Status, r.Body, rq.status, rq.code)
		}
	}
	b.sameFingerprint(before, b.fingerprint(), "another fan's requests")

	// Bob's export holds nothing of Alice's.
	r := b.do(req{method: http.MethodGet, path: "/v1/me", header: fanHeader(bob.FanToken)})
	if r.Status != http.StatusOK || bytes.Contains(r.Body, []byte(alice.Presave.ID)) || bytes.Contains(r.Body, []byte("alice")) || bytes.Contains(r.Body, []byte(alice.FanID)) {
		t.Errorf("bob's export shows alice's data: %s", r.Body)
	}
	// Bob disconnecting Spotify leaves Alice's grant alone.
	if r := b.do(req{method: http.MethodDelete, path: "/v1/me/connections/spotify", header: fanHeader(bob.FanToken)}); r.Status != http.StatusOK {
		t.Fatalf("bob disconnects: HTTP %d", r.Status)
	}
	if n := b.count("provider_tokens", "fan_id = $1", alice.FanID); n != 1 {
		t.Errorf("alice's token is gone")
	}
	if n := b.count("presaves", "id = $1 AND status = 'pending'", alice.Presave.ID); n != 1 {
		t.Errorf("alice's pre-save changed")
	}
}
