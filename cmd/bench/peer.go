package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/rdb"
)

// The peer design (figure 1) is what open-source pre-save tools do: one
// delayed asynq task per pre-save holding the fan's OAuth tokens, no
// database, no sealing, no limiter, no lock, a check before each write.
// The benchmark runs it with presave's own provider clients, against the
// same fake, in as many processes at the same concurrency as the
// workers: the honest ceiling for work that calls a provider. Presave
// never puts a token in a task payload; only this measurement does.
const (
	peerQueue    = "bench-peer"
	peerTaskType = "bench:peer-presave"
	// peerMode is the hidden first argument that makes the benchmark's
	// own binary a peer worker process.
	peerMode = "peer-worker"
)

// peerPayload is one peer task: the grant travels in the queue.
type peerPayload struct {
	Provider providers.Name   `json:"provider"`
	Access   string           `json:"access"`
	Refresh  string           `json:"refresh"`
	Expiry   time.Time        `json:"expiry"`
	Target   providers.Target `json:"target"`
}

// peer is figure 1: n pre-saves of a release like the drain's, due at
// one instant, drained by the peer design.
func (b *bench) peer(ctx context.Context, res results) error {
	n := b.o.n
	tasks, err := b.peerTasks(ctx, n)
	if err != nil {
		return fmt.Errorf("grants: %w", err)
	}
	redisOpt := b.rdb.Conn.Asynq()
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	// Due once every task is queued, at a conservative 1,500 enqueues/s,
	// on a whole second: asynq keeps a delayed task's time in whole
	// seconds (truncated) and hands it out once that second has begun,
	// so a due time within a second would let the tasks start up to a
	// second early (measured: 0.45 s) and flatter the peer's rate.
	due := time.Now().Add(2*time.Second + time.Duration(float64(n)/1500*float64(time.Second))).Truncate(time.Second).Add(time.Second)
	if err := parallel(ctx, n, width, func(ctx context.Context, i int) error {
		_, err := client.EnqueueContext(ctx, tasks[i], asynq.Queue(peerQueue), asynq.ProcessAt(due), asynq.MaxRetry(25))
		return err
	}); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	if time.Now().After(due) {
		fmt.Fprintf(b.out, "  warning: the peer tasks were queued after their due time\n")
	}
	procs, err := b.startPeers(ctx)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
		_ = asynq.NewInspector(redisOpt).DeleteQueue(peerQueue, true)
	}()
	calls0 := b.providerCalls()
	if err := sleepUntil(ctx, due); err != nil {
		return err
	}
	cpu0 := sampleCPU()
	if err := waitQueueDone(ctx, asynq.NewInspector(redisOpt), n); err != nil {
		return err
	}
	use := cpu0.until(sampleCPU())
	var last time.Time
	done := 0
	for _, p := range procs {
		r, err := p.stop()
		if err != nil {
			return err
		}
		done += r.done
		if r.last.After(last) {
			last = r.last
		}
	}
	if done != n {
		return fmt.Errorf("the peer processes report %d of %d pre-saves done", done, n)
	}
	res["peer_per_s"] = float64(n) / last.Sub(due).Seconds()
	res["peer_calls_per_presave"] = float64(b.providerCalls()-calls0) / float64(n)
	// The peer's own processes, Redis and the fake: presave's idle
	// workers, API and PostgreSQL are left out.
	for _, g := range []string{"peer", "redis", "fake"} {
		res["peer_cpu_ms_per_presave_"+g] = 1000 * use.sec[g] / float64(n)
		res["peer_cpu_ms_per_presave"] += res["peer_cpu_ms_per_presave_"+g]
		res["peer_cpu_ms_per_presave_cores_busy"] += use.sec[g] / use.wall.Seconds()
	}
	return nil
}

// peerTasks are n peer tasks, half per provider, each holding a grant
// a fan gave at the fake, its access token expired.
func (b *bench) peerTasks(ctx context.Context, n int) ([]*asynq.Task, error) {
	provs, err := registry.FromEnv(config.Env(fakeEnv(b.fakeURL)), b.cl.APIURL)
	if err != nil {
		return nil, err
	}
	tasks := make([]*asynq.Task, n)
	spotify := providers.Target{AlbumIDs: []string{base62(22)}, ArtistIDs: []string{base62(22)}}
	youtube := providers.Target{VideoID: base62(11)}
	err = parallel(ctx, n, width, func(ctx context.Context, i int) error {
		p, t := providers.Spotify, spotify
		if i%2 == 1 {
			p, t = providers.YouTube, youtube
		}
		prov, _ := provs.Get(p)
		tok, err := fakeGrant(ctx, prov, t, fmt.Sprintf("peer-%d", i))
		if err != nil {
			return err
		}
		// Consented days before: expired by the release time.
		pl, err := json.Marshal(peerPayload{Provider: p, Access: tok.AccessToken, Refresh: tok.RefreshToken,
			Expiry: tok.Expiry.Add(-24 * time.Hour), Target: t})
		tasks[i] = asynq.NewTask(peerTaskType, pl)
		return err
	})
	return tasks, err
}

// fakeEnv is the environment that points provider clients at the fake.
func fakeEnv(fakeURL string) func(string) string {
	env := map[string]string{}
	for _, kv := range fake.URLs(fakeURL).Env() {
		env[kv[0]] = kv[1]
	}
	return func(k string) string { return env[k] }
}

// fakeGrant plays a fan consenting to t's actions at the fake, directly
// (no presave API), and returns the grant.
func fakeGrant(ctx context.Context, prov providers.Provider, t providers.Target, user string) (*oauth2.Token, error) {
	verifier := oauth2.GenerateVerifier()
	q, err := fake.Consent(ctx, fake.WithUser(prov.AuthCodeURL("peer-state", verifier, prov.Scopes(prov.Actions(t))), user))
	if err != nil {
		return nil, err
	}
	g, err := prov.Exchange(ctx, q.Get("code"), verifier)
	if err != nil {
		return nil, err
	}
	return g.Token, nil
}

// waitQueueDone polls the peer queue until n tasks were processed and
// none is left in it.
func waitQueueDone(ctx context.Context, in *asynq.Inspector, n int) error {
	deadline := time.Now().Add(15 * time.Minute)
	for {
		info, err := in.GetQueueInfo(peerQueue)
		if err == nil && info.Size == 0 && info.Processed-info.Failed >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("peer design: not drained after 15 minutes (%+v, %v)", info, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// peerProc is one running peer worker process.
type peerProc struct {
	cmd  *exec.Cmd
	out  *bufio.Scanner
	once sync.Once
	rep  peerReport
	err  error
}

// peerReport is what a peer process prints when it stops.
type peerReport struct {
	done int
	last time.Time
}

// startPeers starts the peer processes: this binary in peerMode.
func (b *bench) startPeers(ctx context.Context) ([]*peerProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var procs []*peerProc
	for range b.o.workers {
		cmd := exec.Command(self, peerMode)
		cmd.Env = append(os.Environ(), "PEER_REDIS_URL="+b.rdb.URL,
			"PEER_CONCURRENCY="+strconv.Itoa(b.o.concurrency))
		for _, kv := range fake.URLs(b.fakeURL).Env() {
			cmd.Env = append(cmd.Env, kv[0]+"="+kv[1])
		}
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return procs, err
		}
		if err := cmd.Start(); err != nil {
			return procs, err
		}
		peerPIDs.Store(cmd.Process.Pid, true)
		procs = append(procs, &peerProc{cmd: cmd, out: bufio.NewScanner(stdout)})
	}
	return procs, nil
}

// stop ends the process (SIGTERM) and reads its report; once.
func (p *peerProc) stop() (peerReport, error) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		for p.out.Scan() {
			f := strings.Fields(p.out.Text())
			if len(f) == 2 {
				p.rep.done, _ = strconv.Atoi(f[0])
				ns, _ := strconv.ParseInt(f[1], 10, 64)
				p.rep.last = time.Unix(0, ns)
			}
		}
		p.err = p.cmd.Wait()
		peerPIDs.Delete(p.cmd.Process.Pid)
	})
	return p.rep, p.err
}

// peerPIDs are the running peer processes, for sampleCPU.
var peerPIDs sync.Map

func isPeer(pid int) bool {
	_, ok := peerPIDs.Load(pid)
	return ok
}

// runPeer is a peer worker process: asynq at the given concurrency on
// the peer queue, each task refreshing its grant when expired, then for
// each action a check and, unless in effect, the write. On SIGTERM it
// prints how many it did and when the last ended ("done unixnano").
func runPeer(getenv func(string) string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	provs, err := registry.FromEnv(config.Env(getenv), "http://127.0.0.1")
	if err != nil {
		return err
	}
	conc, err1 := strconv.Atoi(getenv("PEER_CONCURRENCY"))
	conn, err2 := rdb.Parse(getenv("PEER_REDIS_URL"))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	var done, last atomic.Int64
	srv := asynq.NewServer(conn.Asynq(), asynq.Config{
		Concurrency: conc, Queues: map[string]int{peerQueue: 1},
		// As presave's workers poll (their defaults): asynq's own 5 s
		// would measure its forwarder, not the design.
		DelayedTaskCheckInterval: 200 * time.Millisecond, TaskCheckInterval: 200 * time.Millisecond,
		Logger: quietLogger{}, LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(peerTaskType, func(ctx context.Context, t *asynq.Task) error {
		var pl peerPayload
		if err := json.Unmarshal(t.Payload(), &pl); err != nil {
			return fmt.Errorf("%w: %w", asynq.SkipRetry, err)
		}
		prov, ok := provs.Get(pl.Provider)
		if !ok {
			return fmt.Errorf("%w: no provider %s", asynq.SkipRetry, pl.Provider)
		}
		c := prov.Client(ctx, &oauth2.Token{AccessToken: pl.Access, RefreshToken: pl.Refresh, Expiry: pl.Expiry}, nil)
		for _, a := range prov.Actions(pl.Target) {
			in, err := c.InEffect(ctx, a, pl.Target)
			if err != nil {
				return err
			}
			if !in {
				if _, err := c.Perform(ctx, a, pl.Target); err != nil {
					return err
				}
			}
		}
		done.Add(1)
		for now := time.Now().UnixNano(); ; {
			if l := last.Load(); l >= now || last.CompareAndSwap(l, now) {
				return nil
			}
		}
	})
	if err := srv.Start(mux); err != nil {
		return err
	}
	<-ctx.Done()
	srv.Shutdown()
	_, err = fmt.Fprintf(stdout, "%d %d\n", done.Load(), last.Load())
	return err
}
