package rdb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/presave/presave/internal/cluster"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/ratelimit"
	"github.com/presave/presave/internal/rdb"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url    string
		mode   rdb.Mode
		addrs  string
		master string
		db     int
		pass   string
		tls    bool
	}{
		{"redis://127.0.0.1:6379/3", rdb.Single, "127.0.0.1:6379", "", 3, "", false},
		{"rediss://:s3cret@cache.internal:6380/0", rdb.Single, "cache.internal:6380", "", 0, "s3cret", true},
		{"redis-sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379/mymaster?db=2&sentinel_password=sp", rdb.Sentinel, "10.0.0.1:26379,10.0.0.2:26379", "mymaster", 2, "s3cret", false},
		{"redis-sentinel://10.0.0.1:26379/mymaster", rdb.Sentinel, "10.0.0.1:26379", "mymaster", 0, "", false},
		{"redis-cluster://default:p%40ss@n1:7000,n2:7001?tls=true", rdb.Cluster, "n1:7000,n2:7001", "", 0, "p@ss", true},
		{"redis-cluster://n1:7000/", rdb.Cluster, "n1:7000", "", 0, "", false},
	} {
		c, err := rdb.Parse(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if c.Mode != tc.mode || strings.Join(c.Addrs, ",") != tc.addrs || c.Master != tc.master || c.DB != tc.db || c.Password != tc.pass || (c.TLS != nil) != tc.tls {
			t.Errorf("%s = %+v", tc.url, c)
		}
		if strings.Contains(c.String(), "s3cret") || strings.Contains(c.String(), "p@ss") {
			t.Errorf("%s: String() shows the password: %s", tc.url, c)
		}
		if _, ok := c.Asynq().MakeRedisClient().(redis.UniversalClient); !ok {
			t.Errorf("%s: asynq's option makes no go-redis client", tc.url)
		}
	}
	for _, bad := range []string{
		"http://127.0.0.1:6379",
		"redis-sentinel://:s3cret@10.0.0.1:26379",     // no master name
		"redis-sentinel://10.0.0.1/mymaster",          // no port
		"redis-sentinel://10.0.0.1:26379/m?db=x",      // bad db
		"redis-cluster://:s3cret@n1:7000/2",           // a cluster has no database
		"redis-cluster://:s3cret@n1:7000?pool=9",      // unknown option
		"redis-cluster://:s3cret@/",                   // no host
		"redis-sentinel://10.0.0.1:26379/m?tls=maybe", // bad tls
	} {
		_, err := rdb.Parse(bad)
		if err == nil {
			t.Errorf("%s: accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the password: %v", bad, err)
		}
	}
}

func needRedisServer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (scripts/services.sh installs it)")
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip enqueues a task through asynq on conn and waits until a
// server on conn has run it.
func roundTrip(t *testing.T, ctx context.Context, conn rdb.Conn) {
	t.Helper()
	var ran atomic.Int32
	mux := asynq.NewServeMux()
	mux.HandleFunc("rdb:test", func(context.Context, *asynq.Task) error { ran.Add(1); return nil })
	srv := asynq.NewServer(conn.Asynq(), asynq.Config{Concurrency: 2, Queues: map[string]int{"spotify": 1},
		LogLevel: asynq.FatalLevel, DelayedTaskCheckInterval: 100 * time.Millisecond, TaskCheckInterval: 50 * time.Millisecond})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	client := asynq.NewClient(conn.Asynq())
	defer client.Close()
	if _, err := client.EnqueueContext(ctx, asynq.NewTask("rdb:test", nil), asynq.Queue("spotify"), asynq.TaskID(uuid.NewString())); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for ran.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the task never ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCluster starts a private 3-master cluster with replicas replicas
// each, and a client of its REDIS_URL (closed with the test).
func startCluster(t *testing.T, ctx context.Context, replicas int) (*cluster.RedisCluster, rdb.Conn, redis.UniversalClient) {
	t.Helper()
	needRedisServer(t)
	rc, err := cluster.StartRedisCluster(ctx, t.TempDir(), 3, replicas)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	conn, err := rdb.Parse(rc.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := conn.Client()
	t.Cleanup(func() { _ = client.Close() })
	return rc, conn, client
}

// TestCluster runs presave's multi-key scripts (the pacing script with
// its stop keys, the backoff, the budget) and asynq on a real 3-master
// Redis Cluster: every script's keys share one slot. A script across two
// untagged keys is refused there, so the same calls would fail without
// the hash tags.
// TestClientsOwnTheirAddresses: go-redis appends the cluster nodes it
// discovers to the address slice it was given, under its own client's
// lock; two clients of one URL sharing that slice's array raced there
// (the race detector caught it in TestClusterFollowsAFailover).
func TestClientsOwnTheirAddresses(t *testing.T) {
	t.Parallel()
	c, err := rdb.Parse("redis-cluster://n1:7000,n2:7001,n3:7002")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Client().(*redis.ClusterClient), c.Client().(*redis.ClusterClient)
	defer a.Close()
	defer b.Close()
	if x, y := a.Options().Addrs, b.Options().Addrs; &x[0] == &y[0] || &x[0] == &c.Addrs[0] {
		t.Errorf("two clients share their seed addresses' array")
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, conn, client := startCluster(t, ctx, 0)

	// Without a shared tag, two keys of one script land in other slots.
	cross := redis.NewScript(`return redis.call("MSET", KEYS[1], "1", KEYS[2], "1")`)
	if err := cross.Run(ctx, client, []string{"presave:stop:a", "presave:rate:spotify"}).Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("a script across slots: %v, want CROSSSLOT (is this a cluster?)", err)
	}

	lim := ratelimit.New(client, map[string]ratelimit.Rate{"spotify": {PerSecond: 1000, Burst: 10}, "youtube": {PerSecond: 1000, Burst: 10}})
	for _, p := range []providers.Name{providers.Spotify, providers.YouTube} {
		id := uuid.New()
		stop := ratelimit.Stop{Key: queue.StopKey(p, id), AtLeast: 1}
		if err := lim.Wait(ctx, string(p), 1, time.Second, stop); err != nil {
			t.Fatalf("%s: pacing with a stop key: %v", p, err)
		}
		if err := client.Set(ctx, queue.StopKey(p, id), "1", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := lim.Wait(ctx, string(p), 1, time.Second, stop); !errors.Is(err, ratelimit.ErrStopped) {
			t.Fatalf("%s: pacing after the stop key was set: %v, want ErrStopped", p, err)
		}
		if _, err := lim.Backoff(ctx, string(p)); err != nil {
			t.Fatalf("%s: backoff: %v", p, err)
		}
	}
	budget := ratelimit.NewBudget(client, "youtube-units", 100, func(now time.Time) (string, time.Time) { return "day", now.Add(time.Hour) })
	if _, err := budget.Take(ctx, 50); err != nil {
		t.Fatalf("budget: %v", err)
	}
	roundTrip(t, ctx, conn)
}

// TestSentinelFollowsAFailover: both clients of a Sentinel URL work, the
// master is killed, the sentinels promote the replica, and both work
// again on the new master.
func TestSentinelFollowsAFailover(t *testing.T) {
	t.Parallel()
	needRedisServer(t)
	ctx := ctxT(t)
	s, err := cluster.StartRedisSentinel(ctx, t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	conn, err := rdb.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := conn.Client()
	defer client.Close()
	if err := client.Set(ctx, "presave:test", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, ctx, conn)

	before, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Master.Kill()
	if _, err := s.WaitFailover(ctx, before); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, func() error { return client.Set(ctx, "presave:test", "after", 0).Err() }); err != nil {
		t.Fatalf("the client did not follow the failover: %v", err)
	}
	roundTrip(t, ctx, conn)
}

// waitFor retries fn until it succeeds or 30 s pass (the client learns
// the new master at its next connection).
func waitFor(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestClusterFollowsAFailover: a master of a cluster with replicas is
// killed; once its replica holds its slots, every key is writable again
// at once through the same clients (go-redis alone kept sending those
// slots to the dead master for up to a minute), asynq's included.
func TestClusterFollowsAFailover(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	rc, conn, client := startCluster(t, ctx, 1)
	writeAll := func() (failed int, last error) {
		for i := range 100 {
			if err := client.Set(ctx, "presave:test:"+strconv.Itoa(i), "v", time.Minute).Err(); err != nil {
				failed, last = failed+1, err
			}
		}
		return failed, last
	}
	if n, err := writeAll(); n > 0 {
		t.Fatalf("%d writes failed before the failover: %v", n, err)
	}
	rc.Masters[0].Kill()
	if err := rc.WaitPromoted(ctx, rc.Masters[0]); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	for {
		n, err := writeAll()
		if n == 0 {
			break
		}
		if time.Since(promoted) > 3*time.Second {
			t.Fatalf("%d of 100 writes still fail %s after the promotion: %v", n, time.Since(promoted).Round(time.Millisecond), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	roundTrip(t, ctx, conn)
}

// TestGoRedisLogsThroughSlog: a client that cannot dial says so in the
// process's structured log, not on stderr.
func TestGoRedisLogsThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	rdb.SetLogger(slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil)))
	// The logger is the process's: the other tests log on stderr again.
	t.Cleanup(func() { rdb.SetLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))) })
	c, err := rdb.Parse("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Client()
	defer cl.Close()
	if err := cl.Ping(context.Background()).Err(); err == nil {
		t.Fatal("a ping to a closed port answered")
	}
	mu.Lock()
	defer mu.Unlock()
	var line struct{ Level, Msg, Detail string }
	if err := json.Unmarshal(bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[0], &line); err != nil ||
		line.Level != "WARN" || line.Msg != "redis client" || !strings.Contains(line.Detail, "failed to dial") {
		t.Errorf("go-redis's log line: %q (%v)", buf.String(), err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
