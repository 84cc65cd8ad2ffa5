package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/redistest"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/storetest"
	"github.com/presave/presave/internal/wire"
)

const adminToken = "test-admin-token-0123456789"

// Valid identifiers for test releases.
const (
	spAlbum    = "4aawyAB9vmqN3uQ7FjRGTy"
	spTrack    = "11dFghVXANMlKmJXsNCbNl"
	spArtist   = "0OdUWJ0sBjDrqHygGUXeCF"
	spPlaylist = "37i9dQZF1DXcBWIGoYBM5M"
	ytVideo    = "dQw4w9WgXcQ"
	ytChannel  = "UC_x5XG1OV2P6uZZ5FSM9Ttw"
	myPlaylist = "Night Drive: The Examples"
	amAlbum    = "1577502911"
	amSong1    = "1577502912"
	amSong2    = "1577502913"
)

// clock is the API's clock; tests move it forward to expire states.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// bundle is one test's world: its own PostgreSQL schema and Redis
// database, the fake provider, and the API over real HTTP.
type bundle struct {
	t     *testing.T
	db    storetest.Bundle
	st    *store.Store
	rdb   redistest.DB
	fake  *fake.Server
	srv   *api.Server
	url   string
	insp  *asynq.Inspector
	clock *clock
	hc    *http.Client
	logs  *logBuffer
	// bindings holds the binding cookie each start set, by its state,
	// for callback to bring back as the starting client would.
	bindMu   sync.Mutex
	bindings map[string]string
	// providerEnv points a worker's providers at the fake.
	providerEnv map[string]string
	provs       registry.Set
	pageMounted bool
}

// setup builds a bundle; opts adjust the API configuration.
func setup(t *testing.T, opts ...func(*api.Config)) *bundle {
	t.Helper()
	return setupEnv(t, nil, opts...)
}

// setupEnv is setup with env overriding the providers' settings
// (SPOTIFY_APP_MODE, GOOGLE_APP_TESTING...).
func setupEnv(t *testing.T, env map[string]string, opts ...func(*api.Config)) *bundle {
	t.Helper()
	b := &bundle{t: t, db: storetest.New(t), rdb: redistest.New(t), fake: fake.New(fake.Options{}), clock: &clock{}}
	b.st = b.db.Store
	fs := httptest.NewServer(b.fake)
	t.Cleanup(fs.Close)

	// The API's URL must be known before the providers are built (it is
	// their redirect URI), so the server starts with a forwarding handler.
	var h http.Handler
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(as.Close)
	b.url = as.URL

	vars := map[string]string{}
	for _, kv := range fake.URLs(fs.URL).Env() {
		vars[kv[0]] = kv[1]
	}
	apple, err := b.fake.AppleMusicEnv()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range apple {
		vars[kv[0]] = kv[1]
	}
	for k, v := range env {
		vars[k] = v
	}
	// The release bodies' Apple Music album, in every storefront.
	b.fake.SetAppleItem(fake.AppleItem{Type: "albums", ID: amAlbum, Tracks: []string{amSong1, amSong2}})
	b.fake.SetAppleItem(fake.AppleItem{Type: "songs", ID: amSong1})
	b.fake.SetAppleItem(fake.AppleItem{Type: "songs", ID: amSong2})
	b.providerEnv = vars
	provs, err := registry.FromEnv(config.Env(func(k string) string { return vars[k] }), as.URL)
	if err != nil {
		t.Fatal(err)
	}
	b.provs = provs
	cfg := api.Config{
		PublicURL: as.URL, AdminToken: adminToken,
		MonitoringUser: "ops", MonitoringPassword: "ops-password",
		ConsentVersion: "test-v1", FanRateLimit: 1000, FanRateBurst: 1000,
		Queue: queue.Config{Window: 10 * time.Minute}, RequestTimeout: 30 * time.Second,
		RedisURL: b.rdb.URL, Now: b.clock.Now, MusicKitJSURL: vars["MUSICKIT_JS_URL"],
	}
	for _, o := range opts {
		o(&cfg)
	}
	b.logs = &logBuffer{t: t}
	log := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b.srv, err = api.New(cfg, b.st, provs, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.srv.Close() })
	h = b.srv.Handler()
	b.insp = asynq.NewInspector(asynq.RedisClientOpt{Addr: b.rdb.Opt.Addr, DB: b.rdb.Opt.DB, Password: b.rdb.Opt.Password})
	t.Cleanup(func() { _ = b.insp.Close() })
	b.hc = &http.Client{
		Timeout:       time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return b
}

// logBuffer keeps everything the API logged (and shows it with -v).
type logBuffer struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *logBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return w.buf.Write(p)
}

func (w *logBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (b *bundle) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	b.t.Cleanup(cancel)
	return ctx
}

// response is an answered request.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	cookie []*http.Cookie
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

// errorCode returns the code of an error answer, failing the test when
// the body is not the one error shape.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not the error shape (HTTP %d): %s", r.Status, r.Body)
	}
	return e.Error.Code
}

func (r response) cookieValue(name string) (*http.Cookie, bool) {
	for _, c := range r.cookie {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// req is a request to send: raw body bytes, or a value to encode as JSON.
type req struct {
	method, path string
	json         any
	body         []byte
	contentType  string
	header       map[string]string
}

func (b *bundle) do(r req) response {
	b.t.Helper()
	var body io.Reader
	ct := r.contentType
	switch {
	case r.body != nil:
		body = bytes.NewReader(r.body)
	case r.json != nil:
		buf, err := json.Marshal(r.json)
		if err != nil {
			b.t.Fatal(err)
		}
		body = bytes.NewReader(buf)
		if ct == "" {
			ct = "application/json"
		}
	}
	target := r.path
	if !strings.HasPrefix(target, "http") {
		target = b.url + r.path
	}
	hr, err := http.NewRequestWithContext(b.ctx(), r.method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if ct != "" {
		hr.Header.Set("Content-Type", ct)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := b.hc.Do(hr)
	if err != nil {
		b.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: out, cookie: resp.Cookies()}
}

func adminHeader() map[string]string {
	return map[string]string{"Authorization": "Bearer " + adminToken}
}

func fanHeader(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// admin sends an admin request and demands status want.
func (b *bundle) admin(method, path string, body any, want int) response {
	b.t.Helper()
	r := b.do(req{method: method, path: path, json: body, header: adminHeader()})
	if r.Status != want {
		b.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// releaseBody is a valid release offering every action on both providers.
func releaseBody(slug string, at time.Time) map[string]any {
	return map[string]any{
		"slug": slug, "title": "The Album", "artist": "The Artist",
		"release_at": at.UTC().Format(time.RFC3339),
		"spotify": map[string]any{
			"album_ids": []string{spAlbum}, "track_ids": []string{spTrack},
			"artist_ids": []string{spArtist}, "follow_playlist_id": spPlaylist,
			"my_playlist": map[string]any{"name": myPlaylist, "description": "Pre-saved on release day."},
		},
		"youtube":    map[string]any{"video_id": ytVideo, "channel_id": ytChannel, "my_playlist": map[string]any{"name": myPlaylist}},
		"applemusic": map[string]any{"album_ids": []string{amAlbum}, "my_playlist": map[string]any{"name": myPlaylist}},
	}
}

// openGuards opens the release's campaign guards, as if its canary had
// passed: a consent due within the relay window is then queued at once
// (while a guard is in its canary, it waits as pending for the relay).
func (b *bundle) openGuards(rel wire.Release) {
	b.t.Helper()
	id := uuid.MustParse(rel.ID)
	for _, p := range providers.Names {
		if _, _, err := b.st.OpenGuard(b.ctx(), id, p, ""); err != nil {
			b.t.Fatal(err)
		}
	}
}

func (b *bundle) createRelease(body map[string]any) wire.Release {
	b.t.Helper()
	var r wire.Release
	b.admin(http.MethodPost, "/v1/releases", body, http.StatusCreated).decode(b.t, &r)
	return r
}

// connected is the outcome of a full connect as a test sees it.
type connected struct {
	FanID    string `json:"fan_id"`
	FanToken string `json:"fan_token"`
	NewFan   bool   `json:"new_fan"`
	Queued   bool   `json:"queued"`
	Presave  struct {
		ID       string            `json:"id"`
		Provider string            `json:"provider"`
		Actions  []string          `json:"actions"`
		Status   string            `json:"status"`
		DueAt    time.Time         `json:"due_at"`
		Consent  map[string]string `json:"consent"`
	} `json:"presave"`
	resp response
}

// startURL runs the start step and returns the consent-screen URL.
func (b *bundle) startURL(p providers.Name, body map[string]any, fanToken string) string {
	b.t.Helper()
	r := req{method: http.MethodPost, path: "/v1/connect/" + string(p) + "/start", json: body}
	if fanToken != "" {
		r.header = fanHeader(fanToken)
	}
	resp := b.do(r)
	if resp.Status != http.StatusOK {
		b.t.Fatalf("start %s: HTTP %d: %s", p, resp.Status, resp.Body)
	}
	var out struct {
		AuthorizeURL string `json:"authorize_url"`
	}
	resp.decode(b.t, &out)
	ck, ok := resp.cookieValue(api.BindingCookie)
	if !ok || ck.Value == "" || !ck.HttpOnly {
		b.t.Fatalf("start %s set no HttpOnly binding cookie", p)
	}
	u, err := url.Parse(out.AuthorizeURL)
	if err != nil {
		b.t.Fatal(err)
	}
	b.bindMu.Lock()
	if b.bindings == nil {
		b.bindings = map[string]string{}
	}
	b.bindings[u.Query().Get("state")] = ck.Value
	b.bindMu.Unlock()
	return out.AuthorizeURL
}

// binding is the binding cookie the start of state set ("" if none).
func (b *bundle) binding(state string) string {
	b.bindMu.Lock()
	defer b.bindMu.Unlock()
	return b.bindings[state]
}

// consent plays the fan on the fake's consent screen (as user, if set)
// and returns the callback query. For Apple Music the consent screen is
// MusicKit JS on our page: the page is fetched, and the fake issues the
// Music User Token its authorize() would (an "&deny=1" added to authURL
// declines), returned as the "code" the page posts.
func (b *bundle) consent(authURL, user string) url.Values {
	b.t.Helper()
	if u, err := url.Parse(authURL); err == nil && u.Path == registry.AuthorizePath {
		return b.musicKitConsent(u, user)
	}
	if user != "" {
		authURL = fake.WithUser(authURL, user)
	}
	q, err := fake.Consent(b.ctx(), authURL)
	if err != nil {
		b.t.Fatal(err)
	}
	return q
}

// callback calls our callback with the provider's query from the client
// that started the flow (its binding cookie), carrying the fan cookie
// when fanToken is set.
func (b *bundle) callback(p providers.Name, q url.Values, fanToken string) response {
	b.t.Helper()
	return b.callbackFrom(p, q, fanToken, b.binding(q.Get("state")))
}

// musicKitConsent is consent on the MusicKit page at u.
func (b *bundle) musicKitConsent(u *url.URL, user string) url.Values {
	b.t.Helper()
	// Without the fan page, a client with MusicKit of its own posts the
	// token itself; with it, the page must be there.
	if page := b.do(req{method: http.MethodGet, path: u.RequestURI()}); b.pageMounted &&
		(page.Status != http.StatusOK || !strings.Contains(string(page.Body), `id="musickit-form"`)) {
		b.t.Fatalf("MusicKit page: HTTP %d: %s", page.Status, page.Body)
	}
	q := url.Values{"state": {u.Query().Get("state")}}
	if u.Query().Get("deny") == "1" {
		q.Set("error", "access_denied")
		return q
	}
	p, _ := b.provs.Get(providers.AppleMusic)
	dev, err := p.(interface{ DeveloperToken() (string, error) }).DeveloperToken()
	if err != nil {
		b.t.Fatal(err)
	}
	if user == "" {
		user = "apple-" + uuid.NewString()[:8]
	}
	mut, err := b.fake.MusicUserToken(dev, user, "us")
	if err != nil {
		b.t.Fatal(err)
	}
	q.Set("code", mut)
	return q
}

// callbackFrom is callback from a client holding binding ("" for one
// that never started this flow: another browser). For Apple Music it is
// the MusicKit page's post.
func (b *bundle) callbackFrom(p providers.Name, q url.Values, fanToken, binding string) response {
	b.t.Helper()
	r := req{method: http.MethodGet, path: registry.CallbackPath(p) + "?" + q.Encode()}
	if p == providers.AppleMusic {
		form := url.Values{"state": {q.Get("state")}}
		if q.Has("code") {
			form.Set("music_user_token", q.Get("code"))
		}
		if q.Has("error") {
			form.Set("error", q.Get("error"))
		}
		r = req{method: http.MethodPost, path: registry.CallbackPath(p), body: []byte(form.Encode()),
			contentType: "application/x-www-form-urlencoded", header: map[string]string{"Origin": b.url}}
	}
	var cookies []string
	if fanToken != "" {
		cookies = append(cookies, api.FanCookie+"="+fanToken)
	}
	if binding != "" {
		cookies = append(cookies, api.BindingCookie+"="+binding)
	}
	if len(cookies) > 0 {
		if r.header == nil {
			r.header = map[string]string{}
		}
		r.header["Cookie"] = strings.Join(cookies, "; ")
	}
	return b.do(r)
}

// connect runs start → consent screen → callback and demands success.
func (b *bundle) connect(p providers.Name, release, user, fanToken string) connected {
	b.t.Helper()
	authURL := b.startURL(p, map[string]any{"release": release, "consent": true, "zone": "Europe/Paris"}, fanToken)
	resp := b.callback(p, b.consent(authURL, user), fanToken)
	if resp.Status != http.StatusOK {
		b.t.Fatalf("callback %s: HTTP %d: %s", p, resp.Status, resp.Body)
	}
	var c connected
	resp.decode(b.t, &c)
	c.resp = resp
	return c
}

// issued returns the tokens the fake issued to the fan's account at p
// (at least one refresh and one access token, or the test fails).
func (b *bundle) issued(fan uuid.UUID, p providers.Name) []string {
	b.t.Helper()
	if p == providers.AppleMusic {
		// No account to name: every Music User Token the fake issued.
		return b.fake.IssuedTokens(p, "")
	}
	var account string
	if err := b.st.Pool().QueryRow(b.ctx(), `SELECT account_id FROM fan_accounts WHERE fan_id = $1 AND provider = $2`, fan, p).Scan(&account); err != nil {
		b.t.Fatal(err)
	}
	toks := b.fake.IssuedTokens(p, account)
	if len(toks) < 2 {
		b.t.Fatalf("the fake issued %d tokens to %s account %s", len(toks), p, account)
	}
	return toks
}

// fingerprint is every table's row count and content hash: equal
// fingerprints mean nothing was written.
func (b *bundle) fingerprint(except ...string) map[string]string {
	b.t.Helper()
	ctx := b.ctx()
	rows, err := b.st.Pool().Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_version' ORDER BY 1`)
	if err != nil {
		b.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.t.Fatal(err)
	}
	if len(tables) < 8 {
		b.t.Fatalf("fingerprint sees only tables %v", tables)
	}
	out := map[string]string{}
next:
	for _, tb := range tables {
		for _, e := range except {
			if e == tb {
				continue next
			}
		}
		var n int
		var sum string
		q := `SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM ` + pgx.Identifier{tb}.Sanitize() + ` t`
		if err := b.st.Pool().QueryRow(ctx, q).Scan(&n, &sum); err != nil {
			b.t.Fatal(err)
		}
		out[tb] = fmt.Sprintf("%d rows %s", n, sum)
	}
	return out
}

func (b *bundle) sameFingerprint(before, after map[string]string, what string) {
	b.t.Helper()
	for k, v := range before {
		if after[k] != v {
			b.t.Errorf("%s: table %s changed: %s -> %s", what, k, v, after[k])
		}
	}
}

// count counts rows of a table matching a condition.
func (b *bundle) count(table, where string, args ...any) int {
	b.t.Helper()
	if where == "" {
		where = "true"
	}
	var n int
	if err := b.st.Pool().QueryRow(b.ctx(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+` WHERE `+where, args...).Scan(&n); err != nil {
		b.t.Fatal(err)
	}
	return n
}

// taskExists reports whether asynq holds the task (in any state).
func (b *bundle) taskExists(queue, id string) bool {
	b.t.Helper()
	_, err := b.insp.GetTaskInfo(queue, id)
	return err == nil
}

// purgeTasks lists the revocation IDs queued in the purge queue.
func (b *bundle) purgeTasks() []string {
	b.t.Helper()
	tasks, err := b.insp.ListPendingTasks(queue.QueueRevoke)
	if err != nil && !strings.Contains(err.Error(), "not found") {
		b.t.Fatal(err)
	}
	var ids []string
	for _, task := range tasks {
		var p struct {
			RevocationID string `json:"revocation_id"`
		}
		if err := json.Unmarshal(task.Payload, &p); err != nil {
			b.t.Fatal(err)
		}
		ids = append(ids, p.RevocationID)
	}
	return ids
}
