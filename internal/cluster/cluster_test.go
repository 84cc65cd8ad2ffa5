package cluster_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presave/presave/internal/cluster"
	"github.com/presave/presave/internal/redistest"
	"github.com/presave/presave/internal/store/storetest"
)

// TestBinariesStartAndStop runs the real binaries as processes: each
// applies migrations and answers /healthz; SIGTERM stops them cleanly and
// SIGKILL ends them at once.
func TestBinariesStartAndStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := build(t)
	db := storetest.New(t)
	rdb := redistest.New(t)
	c := cluster.New(cluster.Config{BinDir: bin, DatabaseURL: db.URL, RedisURL: rdb.URL, TokenKeys: db.Keys, AdminToken: "admin", LogDir: t.TempDir()})
	t.Cleanup(c.Close)

	if _, err := c.StartFake(ctx); err != nil {
		t.Fatal(err)
	}
	api, err := c.StartAPI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w1, err := c.StartWorker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := c.StartWorker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*cluster.Proc{api, w1, w2} {
		resp, err := http.Get("http://" + p.Addr + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s /healthz: %v %v", p.Name, resp, err)
		}
		resp.Body.Close()
	}
	w2.Kill()
	if !w2.Exited() {
		t.Fatal("killed worker still running")
	}
	if err := w1.Stop(20 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, c.Tail(w1, 20))
	}
	if err := api.Stop(20 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, c.Tail(api, 20))
	}
}

// TestRefusesToStartWithoutKey: outside dev mode a missing key is a clear
// error at start, saying how to make one.
func TestRefusesToStartWithoutKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := build(t)
	for _, tc := range []struct{ name, keys, want string }{
		{"missing", "", "TOKEN_KEYS is not set"},
		{"short", "k1:AAAAAAAAAAAAAAAAAAAAAA==", "16 bytes, want 32"},
	} {
		for _, binName := range []string{"api", "worker"} {
			t.Run(tc.name+"/"+binName, func(t *testing.T) {
				out, err := cluster.RunOnce(ctx, bin, binName, "TOKEN_KEYS="+tc.keys, "PRESAVE_DEV=")
				if err == nil {
					t.Fatalf("%s started with TOKEN_KEYS=%q", binName, tc.keys)
				}
				if !contains(out, tc.want) || !contains(out, "/dev/urandom") {
					t.Fatalf("%s error does not explain: %s", binName, out)
				}
			})
		}
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// build compiles the binaries once for the package's tests.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "presave-bin-")
		if buildErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			buildErr = cluster.Build(ctx, binDir)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
