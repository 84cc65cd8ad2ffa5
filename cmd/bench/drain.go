package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/presave/presave/internal/wire"

	"github.com/presave/presave/internal/apiclient"
	"github.com/presave/presave/internal/scenario"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store/inspect"
)

// width is how many simulated fans talk to the API at once.
const width = 32

// release creates a release due at due with targets on the given
// providers and returns its ID.
func (b *bench) release(ctx context.Context, name string, due time.Time, on ...providers.Name) (uuid.UUID, error) {
	spec := wire.ReleaseCreate{
		Slug: fmt.Sprintf("%s-%d", name, time.Now().UnixNano()), Title: "Bench " + name, Artist: "The Benchmarks",
		ReleaseAt: wire.Time(due),
	}
	if slices.Contains(on, providers.Spotify) {
		spec.Spotify = &wire.SpotifyTarget{AlbumIDs: []string{base62(22)}, ArtistIDs: []string{base62(22)}}
	}
	if slices.Contains(on, providers.YouTube) {
		spec.YouTube = &wire.YouTubeTarget{VideoID: base62(11)}
	}
	if slices.Contains(on, providers.AppleMusic) {
		// The sample album, in the fake's catalogue (setup seeds it).
		spec.AppleMusic = &wire.AppleMusicTarget{AlbumIDs: []string{scenario.SampleAppleAlbum}}
	}
	r, err := apiclient.CreateRelease(ctx, b.hc, b.cl.APIURL, b.admin, spec)
	if err != nil {
		return uuid.Nil, err
	}
	return uuid.Parse(r.ID)
}

// ingest connects n fans to release (alternating providers unless only
// one is given) and returns the callbacks per second: start and the
// consent screen run first for everybody, then the release is moved to
// go live shortly after the callbacks should end (no pre-save exists yet,
// so the move is free), then the callbacks alone are timed (state check,
// code exchange with the fake, sealing, the consent transaction and the
// enqueue). It returns the release time too. latency is the fake's
// injected latency, which slows the callbacks (each makes two provider
// requests) and so moves the release time out.
func (b *bench) ingest(ctx context.Context, release uuid.UUID, name string, n int, only providers.Name, latency time.Duration) (float64, time.Time, error) {
	callbacks := make([]apiclient.Callback, n)
	err := parallel(ctx, n, width, func(ctx context.Context, i int) error {
		p := providers.Spotify
		if only != "" {
			p = only
		} else if i%2 == 1 {
			p = providers.YouTube
		}
		var err error
		callbacks[i], err = apiclient.PrepareConsent(ctx, b.hc, b.cl.APIURL, apiclient.ConnectRequest{
			Provider: string(p), Release: release.String(), Zone: "Europe/Berlin", User: fmt.Sprintf("%s-%d", name, i),
		})
		return err
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	// Everybody due at one instant, soon after the callbacks are through:
	// at a conservative 450/s, or with latency at 60% of what width
	// callbacks of two provider requests each can do. Slower, and the
	// warning below says the drain figures include queueing.
	assumed := 450.0
	if latency > 0 {
		assumed = min(assumed, 0.6*width/(2*latency.Seconds()))
	}
	due := time.Now().Add(3*time.Second + time.Duration(float64(n)/assumed*float64(time.Second))).Truncate(time.Second)
	if _, err := apiclient.UpdateRelease(ctx, b.hc, b.cl.APIURL, b.admin, release.String(), map[string]any{"release_at": due}); err != nil {
		return 0, time.Time{}, err
	}
	start, cpu0 := time.Now(), sampleCPU()
	err = parallel(ctx, n, width, func(ctx context.Context, i int) error {
		_, err := apiclient.FinishConsent(ctx, b.hc, callbacks[i])
		return err
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	rate := float64(n) / time.Since(start).Seconds()
	b.ingestCPU = cpu0.until(sampleCPU())
	if time.Now().After(due.Add(-time.Second)) {
		fmt.Fprintf(b.out, "  warning: the callbacks ended after the release time; the drain figures include some queueing\n")
	}
	return rate, due, nil
}

// waitDrained polls until every pre-save of release is finished. The
// figures come from the rows' own timestamps, so the polling period only
// adds to the wall time; each poll reads every row of the release, so it
// stays slow enough not to load the database it measures.
func (b *bench) waitDrained(ctx context.Context, release uuid.UUID, n int) (inspect.Timings, error) {
	deadline := time.Now().Add(15 * time.Minute)
	for {
		t, err := inspect.ReleaseTimings(ctx, b.db.Store, release)
		if err != nil {
			return t, err
		}
		if t.Finished >= n {
			if t.Done != n {
				return t, fmt.Errorf("%d of %d pre-saves failed", n-t.Done, n)
			}
			return t, nil
		}
		if time.Now().After(deadline) {
			return t, fmt.Errorf("only %d of %d pre-saves finished after 15 minutes", t.Finished, n)
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// later is the provisional release time while fans connect; ingest moves
// it to just after the callbacks.
func later() time.Time { return time.Now().Add(time.Hour).Truncate(time.Second) }

// drain is figures 2, 5 and 7: n fans connect through the API (ingest
// rate), all due at one instant; the workers drain them.
func (b *bench) drain(ctx context.Context, res results) error {
	n := b.o.n
	rel, err := b.release(ctx, "drain", later(), providers.Spotify, providers.YouTube)
	if err != nil {
		return err
	}
	var due time.Time
	if res["ingest_per_s"], due, err = b.ingest(ctx, rel, "drain", n, "", 0); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	b.ingestCPU.record(res, "cpu_ms_per_callback", n)
	profiled := make(chan error, 1)
	go func() { profiled <- b.profileWorker(ctx, due) }()
	// The CPU the whole system spends per pre-save: from the release
	// time (nothing runs before it but the relay's ticks) to the end.
	if err := sleepUntil(ctx, due); err != nil {
		return err
	}
	cpu0, calls0 := sampleCPU(), b.providerCalls()
	counts0, cerr := b.serverCounts(ctx)
	t, err := b.waitDrained(ctx, rel, n)
	cpu0.until(sampleCPU()).record(res, "cpu_ms_per_presave", n)
	res["calls_per_presave"] = float64(b.providerCalls()-calls0) / float64(n)
	res["calls_per_presave_min"] = callsPerPresaveMin
	if counts1, err := b.serverCounts(ctx); err == nil && cerr == nil {
		per := func(a, b int64) float64 { return float64(b-a) / float64(n) }
		res["pg_transactions_per_presave"] = per(counts0.pgTransactions, counts1.pgTransactions)
		res["pg_statements_per_presave"] = per(counts0.pgStatements, counts1.pgStatements)
		res["redis_commands_per_presave"] = per(counts0.ownRedis, counts1.ownRedis)
		res["redis_server_commands_per_presave"] = per(counts0.redisCommands, counts1.redisCommands)
	} else {
		fmt.Fprintf(b.out, "  warning: server counts: %v\n", errors.Join(cerr, err))
	}
	if perr := <-profiled; perr != nil {
		fmt.Fprintf(b.out, "  warning: worker profile: %v\n", perr)
	}
	if err != nil {
		return err
	}
	elapsed := t.LastCompleted.Sub(t.FirstDue).Seconds()
	res["drain_per_s"] = float64(n) / elapsed
	res["drain_ratio"] = res["drain_per_s"] / res["ceiling_per_s"]
	if res["peer_per_s"] > 0 {
		res["drain_vs_peer"] = res["drain_per_s"] / res["peer_per_s"]
	}
	res["lateness_p50_s"] = t.LatenessP50
	res["lateness_p99_s"] = t.LatenessP99
	if dups := scenario.Duplicates(b.fake.State()); dups != 0 {
		return fmt.Errorf("%d duplicate entries on the fake provider", dups)
	}
	return nil
}

// callsPerPresaveMin is the fewest provider requests a pre-save of the
// benchmark's release can make on a real release day, half on each
// provider: Spotify, a refresh and one library write (the album and the
// artist together: PUT /me/library takes both); YouTube, a refresh, the
// like and the revoke.
const callsPerPresaveMin = (2.0 + 3.0) / 2

// counts are the database servers' own counters.
type counts struct {
	// pgTransactions: committed and rolled back, in the benchmark's
	// database (a statement outside a transaction is one).
	pgTransactions int64
	// redisCommands: every command the Redis server processed, asynq's
	// included (the server has no per-client count).
	redisCommands int64
	// pgStatements and ownRedis are the workers' own counts
	// (presave_db_statements_total, presave_redis_commands_total): every
	// statement they sent, and the Redis commands beside asynq's.
	pgStatements, ownRedis int64
}

// serverCounts reads PostgreSQL's and Redis's counters. The benchmark
// has both servers to itself while it runs (its schema and database).
func (b *bench) serverCounts(ctx context.Context) (counts, error) {
	var c counts
	if err := b.db.Store.Pool().QueryRow(ctx,
		`SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&c.pgTransactions); err != nil {
		return c, err
	}
	var err error
	if c.redisCommands, err = b.redisInfo(ctx, "stats", "total_commands_processed"); err != nil {
		return c, err
	}
	for _, w := range b.workers {
		m, err := scrape(ctx, b.hc, "http://"+w.Addr+"/metrics")
		if err != nil {
			return c, err
		}
		c.pgStatements += int64(m["presave_db_statements_total"])
		c.ownRedis += int64(m["presave_redis_commands_total"])
	}
	return c, nil
}

// scrape reads the unlabelled series of a Prometheus text exposition.
func scrape(ctx context.Context, hc *http.Client, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s %v", url, resp.Status, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			out[name] = f
		}
	}
	return out, nil
}

// providerCalls counts every request the workers make of the providers:
// the APIs, the token endpoints (refreshes) and Google's revoke.
func (b *bench) providerCalls() int {
	return b.sumCalls(func(route string, _ int) bool {
		return isAPIRoute(route) || route == "/api/token" || route == "/google/token" || route == "/google/revoke"
	})
}

// calls sums the fake's API calls (not OAuth) with status (0 = any).
func (b *bench) calls(status int) int {
	return b.sumCalls(func(route string, st int) bool { return isAPIRoute(route) && (status == 0 || st == status) })
}

// sumCalls sums the fake's answers ("METHOD /route status") that match.
func (b *bench) sumCalls(match func(route string, status int) bool) int {
	total := 0
	for k, v := range b.fake.CallCounts() {
		var method, route string
		var st int
		if _, err := fmt.Sscanf(k, "%s %s %d", &method, &route, &st); err == nil && match(route, st) {
			total += v
		}
	}
	return total
}

func isAPIRoute(route string) bool {
	return strings.HasPrefix(route, "/v1/") || strings.HasPrefix(route, "/youtube/v3/")
}

// withLatency is figure 3: the fake answers every API call after the
// given latency; the workers' concurrency bounds the call rate at
// concurrency ÷ latency.
func (b *bench) withLatency(ctx context.Context, res results) error {
	n := max(b.o.n/4, 100)
	for _, p := range providers.Names {
		b.fake.SetLatency(p, b.o.latency)
	}
	defer func() {
		for _, p := range providers.Names {
			b.fake.SetLatency(p, 0)
		}
	}()
	rel, err := b.release(ctx, "latency", later(), providers.Spotify, providers.YouTube)
	if err != nil {
		return err
	}
	if _, _, err := b.ingest(ctx, rel, "latency", n, "", b.o.latency); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	before := b.calls(0)
	t, err := b.waitDrained(ctx, rel, n)
	if err != nil {
		return err
	}
	calls := b.calls(0) - before
	elapsed := t.LastCompleted.Sub(t.FirstDue).Seconds()
	bound := float64(b.o.workers*b.o.concurrency) / b.o.latency.Seconds()
	res["latency_bound_per_s"] = bound
	res["latency_per_s"] = float64(calls) / elapsed
	res["latency_ratio"] = res["latency_per_s"] / bound
	return nil
}

// rateLimit is figure 6: the fake allows R requests/s for the Spotify
// app, and the workers are configured to the same R; how close do they
// get, and how often are they refused?
func (b *bench) rateLimit(ctx context.Context, res results) error {
	r := b.o.rate
	// About 15 s of work at the limit, so the start and the tail weigh
	// little; a small run (-n below 20,000) takes proportionally less,
	// never under 6 s. Each pre-save makes one paced API call (its album
	// and artist in one library write; the refresh goes to the accounts
	// service, which this limit does not cover).
	const callsPerPresave = 1
	seconds := min(15, max(6, 15*float64(b.o.n)/20000))
	n := max(int(r*seconds/callsPerPresave), 100)
	// Burst 2 on both sides: the fake's tolerance for a short burst and
	// the workers' limiter alike.
	if err := b.startWorkers(ctx, fmt.Sprintf("SPOTIFY_RPS=%g", r), "SPOTIFY_BURST=2",
		"YOUTUBE_RPS=1000000", "YOUTUBE_BURST=100000"); err != nil {
		return err
	}
	defer b.startWorkers(context.WithoutCancel(ctx), unlimited()...)
	rel, err := b.release(ctx, "rate", later(), providers.Spotify)
	if err != nil {
		return err
	}
	if _, _, err := b.ingest(ctx, rel, "rate", n, providers.Spotify, 0); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	// The limit starts after the fans connected: it is the release-day
	// traffic that must respect it. Like Spotify's (a rolling window),
	// the fake's limit tolerates a short burst: 0.2 s worth of requests.
	b.fake.SetRateLimit(providers.Spotify, r, max(2, int(r/5)))
	defer b.fake.SetRateLimit(providers.Spotify, 0, 0)
	all0, limited0 := b.calls(0), b.calls(429)
	// The achieved rate is read where the limit is enforced: the fake's
	// accepted calls, from the first to the last, sampled every 50 ms.
	type sample struct {
		at       time.Time
		accepted int
	}
	stop := make(chan struct{})
	sampled := make(chan []sample, 1)
	go func() {
		var out []sample
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				sampled <- out
				return
			case now := <-tick.C:
				out = append(out, sample{now, (b.calls(0) - all0) - (b.calls(429) - limited0)})
			}
		}
	}()
	_, err = b.waitDrained(ctx, rel, n)
	close(stop)
	samples := <-sampled
	if err != nil {
		return err
	}
	all, limited := b.calls(0)-all0, b.calls(429)-limited0
	var first, last sample
	for _, s := range samples {
		if first.at.IsZero() && s.accepted > 0 {
			first = s
		}
		if s.accepted > last.accepted {
			last = s
		}
	}
	if !last.at.After(first.at) {
		return fmt.Errorf("too few samples to measure a rate")
	}
	res["rate_limit_per_s"] = r
	res["rate_adherence"] = float64(last.accepted-first.accepted) / last.at.Sub(first.at).Seconds() / r
	res["rate_429_share"] = float64(limited) / float64(max(all, 1))
	return nil
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func base62(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// profileWorker writes 10-second CPU profiles of the first worker and of
// this process (the fake provider), taken from the release time on, to
// -profile (when set): where the time goes during a release-day drain
// (go tool pprof DIR/worker.pprof, DIR/fake.pprof).
func (b *bench) profileWorker(ctx context.Context, from time.Time) error {
	if b.o.profile == "" || len(b.workers) == 0 {
		return nil
	}
	if err := sleepUntil(ctx, from); err != nil {
		return err
	}
	if err := os.MkdirAll(b.o.profile, 0o755); err != nil {
		return err
	}
	// This process (the fake provider) over the same 10 s.
	self, err := os.Create(filepath.Join(b.o.profile, "fake.pprof"))
	if err != nil {
		return err
	}
	defer self.Close()
	if err := pprof.StartCPUProfile(self); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	resp, err := b.hc.Get("http://" + b.workers[0].Addr + "/debug/pprof/profile?seconds=10")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	f, err := os.Create(filepath.Join(b.o.profile, "worker.pprof"))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func sleepUntil(ctx context.Context, t time.Time) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(t)):
		return nil
	}
}

// appleMusic is the Apple Music drain: a quarter of N fans (at least 100)
// on a release asking Apple Music alone to add its album to the library,
// connected through the MusicKit page's flow, all due at one instant.
// Every add is checked, written and read back (three requests, the
// fewest a verified add takes); there is no refresh and no revoke.
func (b *bench) appleMusic(ctx context.Context, res results) error {
	n := max(b.o.n/4, 100)
	rel, err := b.release(ctx, "applemusic", later(), providers.AppleMusic)
	if err != nil {
		return err
	}
	if _, _, err := b.ingest(ctx, rel, "applemusic", n, providers.AppleMusic, 0); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	calls0 := b.providerCalls()
	t, err := b.waitDrained(ctx, rel, n)
	if err != nil {
		return err
	}
	res["applemusic_n"] = float64(n)
	res["applemusic_drain_per_s"] = float64(n) / t.LastCompleted.Sub(t.FirstDue).Seconds()
	res["applemusic_calls_per_presave"] = float64(b.providerCalls()-calls0) / float64(n)
	res["applemusic_lateness_p50_s"], res["applemusic_lateness_p99_s"] = t.LatenessP50, t.LatenessP99
	if dups := scenario.Duplicates(b.fake.State()); dups != 0 {
		return fmt.Errorf("%d duplicate entries on the fake provider", dups)
	}
	return nil
}
