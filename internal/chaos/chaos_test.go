package chaos_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/wire"

	"github.com/presave/presave/internal/apiclient"
	"github.com/presave/presave/internal/scenario"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/cluster"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/redistest"
	"github.com/presave/presave/internal/store/inspect"
	"github.com/presave/presave/internal/store/storetest"
)

// binDir holds the binaries, built once for every scenario.
var binDir string

// lines collects one line per scenario, printed together at the end.
var (
	linesMu sync.Mutex
	lines   []string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "presave-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err = cluster.Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if len(lines) > 0 {
		sort.Strings(lines)
		fmt.Printf("\nreliability suite, %d fans per scenario:\n", fanCount())
		for _, l := range lines {
			fmt.Println("  " + l)
		}
	}
	os.Exit(code)
}

// fanCount is CHAOS_FANS, the fans per scenario (default 60: small
// enough for `go test` on two cores; `make chaos` runs more).
func fanCount() int {
	if n, err := strconv.Atoi(os.Getenv("CHAOS_FANS")); err == nil && n >= 20 {
		return n
	}
	return 60
}

// chaosEnv makes recovery quick so a scenario takes seconds, not the
// minutes the production periods would: the relay's rescue of pre-saves
// whose task Redis lost, the sweeper's revival of pre-saves a dead worker
// left running, and the retry backoff. Correctness does not depend on
// them; only how soon things recover does.
var chaosEnv = []string{
	"WORKER_CONCURRENCY=5",
	"RELAY_INTERVAL=500ms", "RELAY_RESCUE_INTERVAL=2s", "SWEEP_INTERVAL=2s",
	"DELAYED_TASK_CHECK_INTERVAL=100ms", "TASK_CHECK_INTERVAL=100ms",
	"RETRY_BASE_DELAY=100ms", "RETRY_MAX_DELAY=2s", "RATE_LIMIT_BACKOFF_BASE=250ms", "RATE_LIMIT_BACKOFF_MAX=2s",
	"PRESAVE_TIMEOUT=10s", "RUNNING_TIMEOUT=25s", "SHUTDOWN_TIMEOUT=3s",
	"LOG_LEVEL=info",
}

// opts describe a scenario's cluster.
type opts struct {
	workers     int
	databaseURL string // "" is the shared test database
	redisURL    string // "" is the shared test Redis
	// latency slows every provider call so the drain lasts long enough
	// for the trouble to land in the middle of it.
	latency string
	env     []string
}

// run is one scenario: a harness, a release and its fans.
type run struct {
	t    *testing.T
	name string
	h    *cluster.Harness
	spec wire.ReleaseCreate
	rel  uuid.UUID
	fans []scenario.Fan
	due  time.Time
	// lost lists fans expected to fail (their grant was revoked).
	lost map[string]bool
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// setup starts a harness and creates the scenario's release, due once
// the fans have had time to connect; it does not connect them.
func setup(t *testing.T, name string, o opts) *run {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real binaries as processes")
	}
	ctx := ctxFor(t, 2*time.Minute)
	if o.databaseURL == "" {
		o.databaseURL = storetest.BaseURL()
	}
	if o.redisURL == "" {
		o.redisURL = redistest.BaseURL()
	}
	if o.latency == "" {
		o.latency = "60ms"
	}
	n := fanCount()
	// The process logs outlive a failed scenario, for a look afterwards.
	logDir, err := os.MkdirTemp("", "presave-chaos-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs kept in %s", logDir)
			return
		}
		os.RemoveAll(logDir)
	})
	h, err := cluster.Setup(ctx, cluster.HarnessConfig{
		BinDir: binDir, DatabaseURL: o.databaseURL, RedisURL: o.redisURL, Prefix: "chaos_" + name,
		Workers: max(o.workers, 1), LogDir: logDir, Parallel: 16, Env: append(append([]string{}, chaosEnv...), o.env...),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, name: name, h: h, lost: map[string]bool{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs (last lines):\n%s", h.TailAll(15))
		}
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err := scenario.SeedFake(ctx, h.FakeURL); err != nil {
		t.Fatal(err)
	}
	for _, p := range providers.Names {
		if err := apiclient.FakeControl(ctx, h.FakeURL, "faults", map[string]any{"provider": p, "latency": o.latency}); err != nil {
			t.Fatal(err)
		}
	}
	// Connecting runs at well over 100 fans/s; leave room for a slow machine.
	r.due = time.Now().Add(3*time.Second + time.Duration(n)*15*time.Millisecond).Truncate(time.Second)
	r.spec = scenario.SampleRelease(strings.ReplaceAll("chaos-"+name, "_", "-")+"-"+strconv.FormatInt(time.Now().UnixNano(), 36), r.due)
	rel, err := apiclient.CreateRelease(ctx, h.HTTP, h.APIURL, h.AdminToken, r.spec)
	if err != nil {
		t.Fatal(err)
	}
	if r.rel, err = uuid.Parse(rel.ID); err != nil {
		t.Fatal(err)
	}
	r.fans = scenario.MakeFans(n, name)
	return r
}

// connect has every fan pre-save the release through the real flow.
func (r *run) connect() {
	r.t.Helper()
	ctx := ctxFor(r.t, 2*time.Minute)
	if _, err := scenario.ConnectAll(ctx, r.h.HTTP, r.h.APIURL, r.spec.Slug, r.fans, 16, nil); err != nil {
		r.t.Fatal(err)
	}
}

// progress reads the release's progress, failing the test on error.
func (r *run) progress() scenario.Progress {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := scenario.ReadProgress(ctx, r.h.Store, r.rel)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// waitFinished waits until at least frac of the pre-saves finished: the
// drain is under way, and the trouble lands in its middle.
func (r *run) waitFinished(frac float64) scenario.Progress {
	r.t.Helper()
	want := max(int(frac*float64(len(r.fans))), 1)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		p := r.progress()
		if p.Finished() >= want {
			if p.Open() == 0 {
				r.t.Fatalf("the release drained before the trouble could land mid-drain: %+v", p)
			}
			return p
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("only %d of %d pre-saves finished after 3 minutes: %+v", p.Finished(), want, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finish waits for the drain and the revocations, reads the end state and
// checks it: every fan not in r.lost done and wholly on the fake, every
// fan in r.lost failed with reconnect_required, no duplicate, no token,
// no revocation left, no action before due. extra is appended to the
// scenario's line.
func (r *run) finish(extra string) scenario.EndState {
	r.t.Helper()
	t := r.t
	ctx := ctxFor(t, 6*time.Minute)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if _, err := scenario.WaitDrained(dctx, r.h.Store, len(r.fans), 200*time.Millisecond, nil, r.rel); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	_, serr := scenario.WaitSecretsGone(sctx, r.h.Store, 200*time.Millisecond)
	scancel()
	es, err := scenario.ReadEndState(ctx, r.h.Store, r.h.FakeURL, len(r.fans), r.rel)
	if err != nil {
		t.Fatal(err)
	}
	st, err := apiclient.FakeState(ctx, r.h.FakeURL)
	if err != nil {
		t.Fatal(err)
	}
	var kept []scenario.Fan
	for _, f := range r.fans {
		if !r.lost[f.User] {
			kept = append(kept, f)
		}
	}
	missing := scenario.Missing(st, r.spec, kept)
	line := es.Line(r.name) + fmt.Sprintf("  lost %d", missing)
	if extra != "" {
		line += "  |  " + extra
	}
	t.Log(line)
	linesMu.Lock()
	lines = append(lines, line)
	linesMu.Unlock()

	if serr != nil {
		t.Errorf("secrets left after the drain: %+v (%v)", es.Secrets, serr)
	}
	if es.Total != len(r.fans) {
		t.Errorf("%d pre-saves in the database, want %d", es.Total, len(r.fans))
	}
	if es.Done != len(kept) {
		t.Errorf("%d done, want %d", es.Done, len(kept))
	}
	if lost := len(r.fans) - len(kept); es.Failed != lost || es.Reasons["reconnect_required"] != lost || es.Partial != 0 {
		t.Errorf("failed %d (%s), partial %d; want %d failed with reconnect_required", es.Failed, es.ReasonsString(), es.Partial, lost)
	}
	if missing != 0 {
		t.Errorf("%d fans' pre-saves are not (wholly) on the fake", missing)
	}
	if es.Duplicates != 0 {
		t.Errorf("%d duplicates on the fake: %s", es.Duplicates, strings.Join(scenario.DuplicateEntries(st), "; "))
	}
	if es.Tokens != 0 || es.Revocations != 0 {
		t.Errorf("%d token rows and %d revocations left", es.Tokens, es.Revocations)
	}
	if es.Times.Early != 0 {
		t.Errorf("%d pre-saves acted before they were due", es.Times.Early)
	}
	return es
}

// calls sums the fake's answers whose "METHOD /route status" key matches.
func calls(st fake.State, match func(key string) bool) int {
	n := 0
	for k, v := range st.Calls {
		if match(k) {
			n += v
		}
	}
	return n
}

// isAction matches the provider calls a pre-save makes (library, follows,
// likes, playlists), not the OAuth and identity calls of connecting.
func isAction(key string) bool {
	return strings.Contains(key, " /v1/me/") || strings.Contains(key, " /v1/playlists/") || strings.Contains(key, " /youtube/v3/")
}

func withStatus(status string) func(string) bool {
	return func(k string) bool { return isAction(k) && strings.HasSuffix(k, " "+status) }
}

func fakeState(t *testing.T, r *run) fake.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := apiclient.FakeState(ctx, r.h.FakeURL)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestWorkerKilled: three workers; one is SIGKILLed mid-drain. asynq
// hands its leased tasks back after their lease; the sweeper revives the
// pre-saves it left running.
func TestWorkerKilled(t *testing.T) {
	t.Parallel()
	r := setup(t, "worker_killed", opts{workers: 3, latency: "100ms"})
	r.connect()
	at := r.waitFinished(0.25)
	victim := r.h.Workers[0]
	victim.Kill()
	r.finish(fmt.Sprintf("killed %s with %d of %d finished", victim.Name, at.Finished(), len(r.fans)))
}

// TestWorkerKilledBetweenCreatingAndRecordingPlaylists: the fake holds
// its answer to every playlist creation for longer than a task may run,
// so the fans' own playlists exist while no worker has heard their IDs;
// then every worker is SIGKILLed and new ones take over. Each fan still
// ends with one playlist (found again by its marker) holding the release
// once.
func TestWorkerKilledBetweenCreatingAndRecordingPlaylists(t *testing.T) {
	t.Parallel()
	r := setup(t, "playlist_kill", opts{workers: 2})
	ctx := ctxFor(t, 5*time.Minute)
	if err := apiclient.FakeControl(ctx, r.h.FakeURL, "playlists", map[string]any{"create_delay": "1m"}); err != nil {
		t.Fatal(err)
	}
	r.connect()
	created := func() int {
		n := 0
		for _, u := range fakeState(t, r).Users {
			n += len(u.Playlists)
		}
		return n
	}
	deadline := time.Now().Add(3 * time.Minute)
	for created() < max(len(r.fans)/4, 1) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d playlists created after 3 minutes", created())
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := created()
	for _, w := range r.h.Workers {
		w.Kill()
	}
	if err := apiclient.FakeControl(ctx, r.h.FakeURL, "playlists", map[string]any{"create_delay": "0s"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.h.AddWorker(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r.finish(fmt.Sprintf("killed every worker with %d playlists created and none recorded", n))
}

// TestWorkerKilledMidBatch: every worker is SIGKILLed while a batch of
// finishes is provably in flight (PostgreSQL shows its revocation insert
// waiting, inside the transaction that already ended its pre-saves);
// new workers take over. The batch either never commits or commits
// without its worker: either way each pre-save ends once and every grant
// is revoked.
func TestWorkerKilledMidBatch(t *testing.T) {
	t.Parallel()
	r := setup(t, "killed_mid_batch", opts{workers: 2})
	ctx := ctxFor(t, 5*time.Minute)
	r.connect()
	at := r.waitFinished(0.2)
	hold, waiting := r.holdBatch(ctx)
	for _, w := range r.h.Workers {
		w.Kill()
	}
	if err := hold.Release(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.h.AddWorker(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r.finish(fmt.Sprintf("killed every worker with %d of %d finished and %d batches waiting in their transactions",
		at.Finished(), len(r.fans), waiting))
}

// holdBatch stops the workers' batches of finishes inside their
// transactions (inspect.HoldRevocationWrites) and waits until one is
// waiting there; it returns the hold and how many wait.
func (r *run) holdBatch(ctx context.Context) (*inspect.RevocationHold, int) {
	r.t.Helper()
	hold, err := inspect.HoldRevocationWrites(ctx, r.h.Store)
	if err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := hold.Waiting(ctx, r.h.Store)
		if err != nil {
			r.t.Fatal(err)
		}
		if n > 0 {
			return hold, n
		}
		if time.Now().After(deadline) {
			r.t.Fatal("no batch of finishes waited for the revocations lock within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisFlushed: the run's Redis database is emptied mid-drain
// (FLUSHDB: the run's own database; the shared server is never
// FLUSHALLed). PostgreSQL is the truth: the relay queues again every
// in-flight pre-save whose task is gone.
func TestRedisFlushed(t *testing.T) {
	t.Parallel()
	r := setup(t, "redis_flushed", opts{workers: 2})
	r.connect()
	at := r.waitFinished(0.25)
	ctx := ctxFor(t, 10*time.Second)
	if err := r.h.Redis.Client.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.finish(fmt.Sprintf("FLUSHDB with %d of %d finished", at.Finished(), len(r.fans)))
}

// TestRedisRestarted: a private redis-server (no persistence) is killed
// mid-drain and started again on the same port, empty.
func TestRedisRestarted(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the real binaries as processes")
	}
	rs, err := cluster.StartRedis(ctxFor(t, 30*time.Second), t.TempDir())
	if err != nil {
		t.Skipf("no private Redis: %v", err)
	}
	t.Cleanup(rs.Kill)
	r := setup(t, "redis_restarted", opts{workers: 2, redisURL: rs.URL()})
	r.connect()
	at := r.waitFinished(0.25)
	rs.Kill()
	time.Sleep(2 * time.Second)
	if err := rs.Start(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	r.finish(fmt.Sprintf("Redis killed with %d of %d finished, back empty after 2s", at.Finished(), len(r.fans)))
}

// TestRedisSentinelFailover: the binaries reach Redis through three
// sentinels (REDIS_URL's Sentinel form); the master's process is killed
// mid-drain, the sentinels promote the replica, and the drain carries on
// there (what the master had not yet copied to it, the relay queues again
// from PostgreSQL).
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the real binaries as processes")
	}
	s, err := cluster.StartRedisSentinel(ctxFor(t, time.Minute), t.TempDir(), 1)
	if err != nil {
		t.Skipf("no private Sentinel setup: %v", err)
	}
	t.Cleanup(s.Close)
	r := setup(t, "sentinel_failover", opts{workers: 2, redisURL: s.URL()})
	r.connect()
	at := r.waitFinished(0.25)
	ctx := ctxFor(t, time.Minute)
	before, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Master.Kill()
	start := time.Now()
	if _, err := s.WaitFailover(ctx, before); err != nil {
		t.Fatal(err)
	}
	r.finish(fmt.Sprintf("master killed with %d of %d finished; the replica took over after %s",
		at.Finished(), len(r.fans), time.Since(start).Round(100*time.Millisecond)))
}

// TestRedisClusterMasterKilled: the binaries use a Redis Cluster of three
// masters with a replica each (REDIS_URL's Cluster form); one master's
// process is killed mid-drain, its replica is promoted once the others
// see it fail, and the drain carries on with nothing lost.
func TestRedisClusterMasterKilled(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the real binaries as processes")
	}
	rc, err := cluster.StartRedisCluster(ctxFor(t, time.Minute), t.TempDir(), 3, 1)
	if err != nil {
		t.Skipf("no private Redis Cluster: %v", err)
	}
	t.Cleanup(rc.Close)
	r := setup(t, "cluster_master_killed", opts{workers: 2, redisURL: rc.URL()})
	r.connect()
	at := r.waitFinished(0.25)
	rc.Masters[0].Kill()
	start := time.Now()
	if err := rc.WaitPromoted(ctxFor(t, time.Minute), rc.Masters[0]); err != nil {
		t.Fatal(err)
	}
	r.finish(fmt.Sprintf("a master killed with %d of %d finished; its replica took over after %s",
		at.Finished(), len(r.fans), time.Since(start).Round(100*time.Millisecond)))
}

// TestPostgresRestarted: a private PostgreSQL crashes mid-drain (pg_ctl
// -m immediate) while a batch of finishes is in flight, and comes back
// 3 s later; the shared server is never touched.
func TestPostgresRestarted(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the real binaries as processes")
	}
	pg, err := cluster.StartPostgres(ctxFor(t, 2*time.Minute), t.TempDir())
	if err != nil {
		t.Skipf("no private PostgreSQL (initdb/pg_ctl): %v", err)
	}
	// Registered before setup, so it runs after the harness dropped its schema.
	t.Cleanup(func() {
		if err := pg.Stop(context.Background()); err != nil {
			t.Errorf("stop private PostgreSQL: %v", err)
		}
	})
	r := setup(t, "postgres_restarted", opts{workers: 2, databaseURL: pg.URL()})
	r.connect()
	at := r.waitFinished(0.25)
	// Crashed while a batch of finishes waits inside its transaction.
	hold, waiting := r.holdBatch(ctxFor(t, 2*time.Minute))
	if err := pg.Crash(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	// The crash ended the hold's transaction; this hands its connection
	// back to the pool (which waits for it on close).
	_ = hold.Release(context.Background())
	time.Sleep(3 * time.Second)
	if err := pg.Start(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	r.finish(fmt.Sprintf("PostgreSQL crashed with %d of %d finished and %d batches waiting in their transactions, back after 3s",
		at.Finished(), len(r.fans), waiting))
}

// TestProvider5xx: a fifth of all provider calls answer 503.
func TestProvider5xx(t *testing.T) {
	t.Parallel()
	r := setup(t, "provider_5xx", opts{workers: 2})
	r.connect()
	ctx := ctxFor(t, 10*time.Second)
	for _, p := range providers.Names {
		if err := apiclient.FakeControl(ctx, r.h.FakeURL, "faults", map[string]any{"provider": p, "error_rate": 0.2}); err != nil {
			t.Fatal(err)
		}
	}
	es := r.finish("")
	st := fakeState(t, r)
	n503 := calls(st, withStatus("503"))
	if n503 == 0 {
		t.Errorf("no 503 was answered: the fault did not apply")
	}
	t.Logf("%d action calls answered 503; %d entries on the fake", n503, es.Entries)
	appendToLine(r.name, fmt.Sprintf("503s answered %d", n503))
}

// rateRefusals counts the rate-limit answers of each service to a
// pre-save's calls: Spotify's 429s, YouTube's 403s (rateLimitExceeded;
// the scenario injects no other 403), Apple Music's 429s.
func rateRefusals(st fake.State) [3]int {
	of := func(p providers.Name, status string) int {
		return calls(st, func(k string) bool {
			i := strings.LastIndex(k, " ")
			return i > 0 && withStatus(status)(k) && st.Routes[k[:i]] == p
		})
	}
	return [3]int{of(providers.Spotify, "429"), of(providers.YouTube, "403"), of(providers.AppleMusic, "429")}
}

// appendToLine adds figures to a scenario's line once they are known.
func appendToLine(name, extra string) {
	linesMu.Lock()
	defer linesMu.Unlock()
	for i, l := range lines {
		if strings.HasPrefix(l, name+" ") {
			lines[i] = l + "  |  " + extra
		}
	}
}

// TestProvider429: the fake's rate limit comes and goes in bursts (3 s,
// and until both services refused a call, at 5 requests/s per provider;
// then 2 s unlimited), answering as each service
// does beyond it (Spotify 429 with Retry-After, YouTube 403
// rateLimitExceeded without), while the workers' own limiter allows
// 200/s.
func TestProvider429(t *testing.T) {
	t.Parallel()
	r := setup(t, "provider_429", opts{workers: 2})
	r.connect()
	ctx := ctxFor(t, 10*time.Minute)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		set := func(rps float64) {
			for _, p := range providers.Names {
				_ = apiclient.FakeControl(ctx, r.h.FakeURL, "faults", map[string]any{"provider": p, "rate_limit_rps": rps, "rate_limit_burst": 2})
			}
		}
		// Each limited spell lasts 3 s, and until every service has
		// refused a call (in it or an earlier one) and one did in it:
		// with one request per Spotify pre-save, the drain's bulk can
		// otherwise fall between two spells.
		limited := func() [3]int {
			st, err := apiclient.FakeState(ctx, r.h.FakeURL)
			if err != nil {
				return [3]int{}
			}
			return rateRefusals(st)
		}
		defer set(0)
		for {
			set(5)
			before := limited()
			until := time.Now().Add(3 * time.Second)
			for {
				// A service refused in an earlier spell may be done
				// draining: it needs no refusal in this one.
				now, ok := limited(), true
				for i := range now {
					ok = ok && (now[i] > before[i] || before[i] > 0)
				}
				if time.Now().After(until) && ok && now != before {
					break
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
			set(0)
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		_, _ = scenario.WaitDrained(dctx, r.h.Store, len(r.fans), 200*time.Millisecond, nil, r.rel)
	}()
	<-drained
	close(stop)
	wg.Wait()
	r.finish("")
	st := fakeState(t, r)
	n := rateRefusals(st)
	nSp, nYt, nAm := n[0], n[1], n[2]
	if nSp == 0 || nYt == 0 || nAm == 0 {
		t.Errorf("Spotify answered %d 429s, YouTube %d 403s, Apple Music %d 429s: the rate limit did not bite", nSp, nYt, nAm)
	}
	appendToLine(r.name, fmt.Sprintf("Spotify 429s %d, YouTube 403s %d, Apple Music 429s %d", nSp, nYt, nAm))
}

// TestQuotaExhausted: Spotify's quota is exhausted from the moment the
// release is due until 6 s later (429 QUOTA_EXCEEDED with Retry-After),
// then resets. The pre-saves wait and then all complete; none fails.
// YouTube's quota resets only at midnight Pacific time, which a test
// cannot wait for: the jobs package tests its daily unit budget.
func TestQuotaExhausted(t *testing.T) {
	t.Parallel()
	r := setup(t, "quota_exhausted", opts{workers: 2})
	r.connect()
	until := r.due.Add(6 * time.Second)
	ctx := ctxFor(t, 10*time.Second)
	if err := apiclient.FakeControl(ctx, r.h.FakeURL, "quota", map[string]any{"provider": "spotify", "exhausted": true, "until": until}); err != nil {
		t.Fatal(err)
	}
	es := r.finish("")
	st := fakeState(t, r)
	n429 := calls(st, withStatus("429"))
	if n429 == 0 {
		t.Errorf("no quota error was answered")
	}
	if es.Times.LastAction.Before(until) {
		t.Errorf("last action at %s, before the quota reset at %s", es.Times.LastAction, until)
	}
	appendToLine(r.name, fmt.Sprintf("Spotify quota errors answered %d; reset %s after due", n429, until.Sub(r.due)))
}

// TestGrantsRevoked: 5% of the fans remove the app before the release.
// Their pre-saves fail with reconnect_required and their tokens are
// purged (and Google's revoked); everyone else's are done.
func TestGrantsRevoked(t *testing.T) {
	t.Parallel()
	r := setup(t, "grants_revoked", opts{workers: 2})
	r.connect()
	ctx := ctxFor(t, time.Minute)
	for i, f := range r.fans {
		if i%20 != 7 {
			continue
		}
		if err := apiclient.FakeControl(ctx, r.h.FakeURL, "revoke", map[string]any{"provider": f.Provider, "user": f.User}); err != nil {
			t.Fatal(err)
		}
		r.lost[f.User] = true
	}
	if time.Now().After(r.due) {
		t.Logf("note: grants revoked %s after due", time.Since(r.due))
	}
	r.finish(fmt.Sprintf("revoked %d of %d", len(r.lost), len(r.fans)))
}

// TestReleaseMoved: the release is moved 12 s later while its pre-saves
// are already queued in Redis for the old time. Nothing may happen at the
// old time: the fake sees no action before the new one; then all are done.
func TestReleaseMoved(t *testing.T) {
	t.Parallel()
	r := setup(t, "release_moved", opts{workers: 2, latency: "10ms"})
	r.connect()
	ctx := ctxFor(t, 5*time.Minute)
	// The relay queues the release's canary ahead of its time (the rest
	// wait in PostgreSQL for the canary's verdict).
	p := r.progress()
	for p.Queued == 0 && time.Until(r.due) > 2*time.Second {
		time.Sleep(50 * time.Millisecond)
		p = r.progress()
	}
	if p.Queued == 0 {
		t.Fatalf("want pre-saves queued in Redis before the move, got %+v", p)
	}
	oldDue := r.due
	newDue := oldDue.Add(12 * time.Second)
	if time.Until(oldDue) < time.Second {
		t.Fatalf("connecting took too long: the release is due in %s, too late to move it first", time.Until(oldDue))
	}
	before := calls(fakeState(t, r), isAction)
	moved, err := apiclient.UpdateRelease(ctx, r.h.HTTP, r.h.APIURL, r.h.AdminToken, r.rel.String(), map[string]any{"release_at": newDue.UTC().Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	// Watch the fake until just before the new time: no action at all.
	for time.Until(newDue) > 300*time.Millisecond {
		if n := calls(fakeState(t, r), isAction); n != before {
			t.Fatalf("%d provider actions at %s, %s before the new release time (old time %s)",
				n-before, time.Now().Format(time.RFC3339Nano), time.Until(newDue), oldDue.Format(time.RFC3339))
		}
		time.Sleep(100 * time.Millisecond)
	}
	resched := 0
	if moved.Rescheduled != nil {
		resched = *moved.Rescheduled
	}
	r.spec.ReleaseAt = wire.Time(newDue)
	es := r.finish(fmt.Sprintf("moved +12s with %d queued (%d rescheduled); no action before the new time", p.Queued, resched))
	if es.Times.Presaves > 0 && es.Times.P50 < 0 {
		t.Errorf("median lateness %s: actions ran before the new time", es.Times.P50)
	}
}
