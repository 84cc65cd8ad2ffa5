// Command demo is presave's one-command demonstration (`make demo`): it
// runs the fake provider, the API and two workers as real processes on an
// isolated PostgreSQL schema and Redis database, creates a release due in
// a few seconds, has simulated fans pre-save it through the real HTTP
// flow (start → the fake's consent screen → callback), shows the release
// draining, and prints what happened: actions done, duplicates found on
// the fake, tokens left, lateness. It then waits for Ctrl-C (or exits at
// once with -exit / DEMO_EXIT=1) and cleans everything up.
//
// It needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL; `make demo`
// starts them with scripts/services.sh). It exits non-zero if a duplicate
// or a token is left.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/wire"

	"github.com/presave/presave/internal/apiclient"
	"github.com/presave/presave/internal/scenario"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/cluster"
	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/store"
)

type options struct {
	fans     int
	delay    time.Duration
	workers  int
	parallel int
	exit     bool
	local    bool
	rps      int
	timeout  time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := options{}
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	fs.IntVar(&o.fans, "fans", 1000, "simulated fans (a third each on Spotify, YouTube and Apple Music)")
	fs.DurationVar(&o.delay, "delay", 20*time.Second, "the release is due this long after the demo starts")
	fs.IntVar(&o.workers, "workers", 2, "worker processes")
	fs.IntVar(&o.parallel, "parallel", 32, "fans connecting at once")
	fs.BoolVar(&o.local, "local", false, "also create a local-timing release (midnight in each fan's zone) for a tenth of the fans, to show per-zone scheduling")
	fs.IntVar(&o.rps, "rps", 200, "request rate per provider shared by the workers (production default: 20)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up if the release has not drained this long after it was due")
	exitDefault, _ := strconv.ParseBool(os.Getenv("DEMO_EXIT"))
	fs.BoolVar(&o.exit, "exit", exitDefault, "exit after the summary instead of waiting for Ctrl-C (also DEMO_EXIT=1)")
	_ = fs.Parse(os.Args[1:])

	code, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// terminal reports whether w is a terminal, where a refreshing line works.
func terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, o options, out io.Writer) (int, error) {
	if o.fans < 2 || o.delay < 0 || o.workers < 1 {
		return 2, errors.New("want -fans ≥ 2, -delay ≥ 0 and -workers ≥ 1")
	}
	d := &demo{o: o, out: out, p: newPrinter(out, terminal(out))}
	h, cleanup, err := d.start(ctx)
	if err != nil {
		return 1, err
	}
	defer cleanup()
	d.h = h
	rel, err := d.releases(ctx)
	if err != nil {
		return 1, err
	}
	if err := d.connect(ctx, rel); err != nil {
		return 1, err
	}
	final, err := d.drain(ctx, rel)
	if err != nil {
		return 1, err
	}
	d.say("presave demo: drained %d pre-saves %s after they were due", final.Total, time.Since(rel.due).Round(100*time.Millisecond))
	// Google grants are revoked by revoke tasks after the token row is
	// deleted; give them a moment so "revocations left" means something.
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	_, _ = scenario.WaitSecretsGone(sctx, h.Store, 250*time.Millisecond)
	scancel()
	es, err := scenario.ReadEndState(ctx, h.Store, h.FakeURL, len(rel.fans), rel.id)
	if err != nil {
		return 1, err
	}
	code := summary(out, es, rel.due, rel.localFans)
	d.where()
	if o.exit {
		return code, nil
	}
	d.say("")
	d.say("presave demo: running until Ctrl-C.")
	<-ctx.Done()
	fmt.Fprintln(out)
	return code, nil
}

// demo is one run's state.
type demo struct {
	o   options
	out io.Writer
	p   *printer
	h   *cluster.Harness
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

// start builds the binaries and starts the fake provider, the API and
// the workers on an isolated schema and Redis database; cleanup stops
// them and drops both.
func (d *demo) start(ctx context.Context) (*cluster.Harness, func(), error) {
	root, err := cluster.ModuleRoot(ctx)
	if err != nil {
		return nil, nil, err
	}
	runDir := filepath.Join(root, ".local", "demo", time.Now().Format("20060102-150405"))
	binDir, logDir := filepath.Join(runDir, "bin"), filepath.Join(runDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, nil, err
	}
	d.say("presave demo: building the binaries…")
	if err := cluster.Build(ctx, binDir); err != nil {
		return nil, nil, err
	}
	d.say("presave demo: starting the fake provider, the API and %d workers (isolated schema and Redis database)…", d.o.workers)
	h, err := cluster.Setup(ctx, cluster.HarnessConfig{
		BinDir: binDir, DatabaseURL: env("DATABASE_URL", config.DefaultDatabaseURL), RedisURL: env("REDIS_URL", config.DefaultRedisURL),
		Prefix: "demo", Workers: d.o.workers, LogDir: logDir, Parallel: d.o.parallel,
		PoolConns: store.DefaultMaxConns, // production's pool, not the tests' cap
		Env:       append(queue.RateEnv(d.o.rps, max(d.o.rps/10, 1)), "LOG_LEVEL=info"),
	})
	if err != nil {
		_ = os.RemoveAll(binDir)
		return nil, nil, err
	}
	cleanup := func() {
		d.say("presave demo: stopping the processes, dropping schema %s and releasing Redis database %d…", h.DB.Schema, h.Redis.Index)
		if err := h.Close(); err != nil {
			d.say("presave demo: cleanup: %v", err)
		}
		// The binaries are rebuilt each run; only the logs are worth keeping.
		_ = os.RemoveAll(binDir)
		d.say("presave demo: stopped. Process logs: %s", logDir)
	}
	d.say("  fake provider  %s", h.FakeURL)
	d.say("  API            %s", h.APIURL)
	for _, w := range h.Workers {
		d.say("  %-14s http://%s", w.Name, w.Addr)
	}
	d.say("  database       schema %s   Redis database %d", h.DB.Schema, h.Redis.Index)
	d.say("  logs           %s", logDir)
	d.say("  provider rate  %d requests/s per provider shared by the workers (-rps; production default 20)", d.o.rps)
	// What a deployment pipeline runs first, on the demo's configuration.
	report, err := h.Preflight(ctx)
	d.say("presave demo: worker preflight (the check to run before real fans; README, Going to production):")
	for _, line := range strings.Split(strings.TrimRight(report, "\n"), "\n") {
		d.say("  %s", line)
	}
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("preflight failed on the demo's configuration: %w", err)
	}
	return h, cleanup, nil
}

// demoRelease is the run's releases and their fans.
type demoRelease struct {
	slug, localSlug string
	id              uuid.UUID
	due             time.Time
	fans, localFans []scenario.Fan
}

// releases creates the releases. The fixed one is due after -delay; the
// local one (-local) is due at the next midnight of each fan's zone, so
// its pre-saves wait in PostgreSQL (not Redis) and only show up as
// pending here.
func (d *demo) releases(ctx context.Context) (demoRelease, error) {
	h := d.h
	start := time.Now()
	r := demoRelease{due: start.Add(d.o.delay).Truncate(time.Second).Add(time.Second),
		slug: "midnight-signals-" + strconv.FormatInt(start.Unix(), 36)}
	if err := scenario.SeedFake(ctx, h.FakeURL); err != nil {
		return r, err
	}
	rel, err := apiclient.CreateRelease(ctx, h.HTTP, h.APIURL, h.AdminToken, scenario.SampleRelease(r.slug, r.due))
	if err != nil {
		return r, err
	}
	if r.id, err = uuid.Parse(rel.ID); err != nil {
		return r, fmt.Errorf("release ID %q: %w", rel.ID, err)
	}
	d.say("presave demo: release %q due at %s (in %s): Spotify %s, YouTube %s, Apple Music %s",
		r.slug, r.due.Local().Format("15:04:05"), time.Until(r.due).Round(time.Second), strings.Join(rel.Actions["spotify"], "+"),
		strings.Join(rel.Actions["youtube"], "+"), strings.Join(rel.Actions["applemusic"], "+"))
	r.fans = scenario.MakeFans(d.o.fans, "fan")
	if d.o.local {
		r.localSlug = r.slug + "-local"
		spec := scenario.SampleRelease(r.localSlug, time.Time{})
		date := time.Now().AddDate(0, 0, 2).Format("2006-01-02")
		spec.ReleaseAt, spec.ReleaseDate, spec.DefaultZone = nil, wire.Text(date), wire.Text("UTC")
		spec.Title = "Midnight Signals (deluxe)"
		if _, err := apiclient.CreateRelease(ctx, h.HTTP, h.APIURL, h.AdminToken, spec); err != nil {
			return r, err
		}
		r.localFans = r.fans[:max(d.o.fans/10, 1)]
		d.say("presave demo: release %q at 00:00 on %s in each fan's zone (%d fans in %d zones)", r.localSlug, date, len(r.localFans), min(len(r.localFans), len(scenario.Zones)))
	}
	return r, nil
}

// connect plays every fan through the real flow, several at once.
func (d *demo) connect(ctx context.Context, r demoRelease) error {
	h, p := d.h, d.p
	connStart := time.Now()
	if _, err := scenario.ConnectAll(ctx, h.HTTP, h.APIURL, r.slug, r.fans, d.o.parallel, func(n int) {
		p.line(false, "fans connecting: %d/%d  (%.0f/s)", n, len(r.fans), float64(n)/time.Since(connStart).Seconds())
	}); err != nil {
		p.end()
		return fmt.Errorf("a fan could not connect: %w\n%s", err, h.TailAll(10))
	}
	if len(r.localFans) > 0 {
		if _, err := scenario.ConnectAll(ctx, h.HTTP, h.APIURL, r.localSlug, r.localFans, d.o.parallel, nil); err != nil {
			p.end()
			return fmt.Errorf("a fan could not connect to the local release: %w", err)
		}
	}
	took := time.Since(connStart)
	msg := fmt.Sprintf("fans connected: %d to %q", len(r.fans), r.slug)
	if len(r.localFans) > 0 {
		msg += fmt.Sprintf(" and %d to %q", len(r.localFans), r.localSlug)
	}
	p.line(true, "%s in %s (%.0f/s through start → consent screen → callback)",
		msg, took.Round(10*time.Millisecond), float64(len(r.fans)+len(r.localFans))/took.Seconds())
	p.end()
	return nil
}

// drain watches the release drain from PostgreSQL (the truth).
func (d *demo) drain(ctx context.Context, r demoRelease) (scenario.Progress, error) {
	dctx, cancel := context.WithDeadline(ctx, r.due.Add(d.o.timeout))
	defer cancel()
	var rate rateMeter
	final, err := scenario.WaitDrained(dctx, d.h.Store, len(r.fans), time.Second/2, func(pr scenario.Progress) {
		now := time.Now()
		rt := rate.add(now, pr.Finished())
		if now.Before(r.due) {
			d.p.line(false, "waiting for the release: due in %s  |  %d pre-saves: %d in PostgreSQL, %d queued in Redis",
				r.due.Sub(now).Round(time.Second), pr.Total, pr.Pending, pr.Queued)
			return
		}
		eta := "–"
		if rt > 0 {
			eta = (time.Duration(float64(pr.Open())/rt*float64(time.Second)) + time.Second/2).Round(time.Second).String()
		}
		d.p.line(false, "draining: pending %d  running %d  done %d  failed %d  |  %.0f/s  ETA %s  |  %s since due",
			pr.Pending+pr.Queued, pr.Running, pr.Done, pr.Failed+pr.Partial, rt, eta, now.Sub(r.due).Round(time.Second))
	}, r.id)
	d.p.end()
	if err != nil {
		return final, fmt.Errorf("%w\n%s", err, d.h.TailAll(10))
	}
	return final, nil
}

// where prints where to look next: asynqmon, the API, the fake.
func (d *demo) where() {
	h := d.h
	d.say("")
	d.say("asynqmon (queues, tasks, retries): %s", h.MonitoringURL())
	d.say("  user %s   password %s", h.MonitoringUser, h.MonitoringPassword)
	d.say("API (admin token for /v1/releases): %s   Authorization: Bearer %s", h.APIURL, h.AdminToken)
	d.say("fake provider state: %s/_fake/state", h.FakeURL)
}

// summary prints what the run did and returns the exit code: 1 when a
// duplicate or a token is left.
func summary(out io.Writer, es scenario.EndState, due time.Time, localFans []scenario.Fan) int {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	mark := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "FAIL"
	}
	say("")
	say("summary")
	say("  pre-saves              %d expected, %d done (Spotify %d, YouTube %d, Apple Music %d), %d failed, %d open",
		es.Expected, es.Done, es.DoneBy["spotify"], es.DoneBy["youtube"], es.DoneBy["applemusic"], es.Failed+es.Partial, es.Open())
	if r := es.ReasonsString(); r != "" {
		say("  failure reasons        %s", r)
	}
	say("  actions done           %d recorded in PostgreSQL, %d entries on the fake provider", es.Times.Actions, es.Entries)
	say("  duplicates on the fake %d  %s", es.Duplicates, mark(es.Duplicates == 0))
	if len(localFans) > 0 {
		say("  token rows left        %d, all held for pending pre-saves of the local release; %d unneeded  %s", es.Tokens, es.Unneeded, mark(es.Unneeded == 0))
	} else {
		say("  token rows left        %d  %s", es.Tokens, mark(es.Tokens == 0))
	}
	say("  revocations left       %d  (Google grants still to revoke; Spotify and Apple Music have no revoke endpoint)", es.Revocations)
	if !es.Times.LastAction.IsZero() {
		say("  due → last action      %s", es.Times.LastAction.Sub(due).Round(10*time.Millisecond))
		say("  lateness (due → first action of a pre-save)  p50 %s  p99 %s  max %s",
			es.Times.P50.Round(time.Millisecond), es.Times.P99.Round(time.Millisecond), es.Times.Max.Round(time.Millisecond))
	}
	if es.Times.Early > 0 {
		say("  actions before due     %d  FAIL", es.Times.Early)
	}
	if len(localFans) > 0 {
		say("  local release          %d pre-saves wait in PostgreSQL for midnight in their fans' zones; their tokens are kept until then", len(localFans))
	}
	if es.Duplicates > 0 || es.Unneeded > 0 || (len(localFans) == 0 && es.Tokens > 0) || es.Times.Early > 0 || es.Open() > 0 {
		return 1
	}
	return 0
}
