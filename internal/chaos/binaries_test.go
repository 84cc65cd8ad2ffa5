package chaos_test

import (
	"context"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/presave/presave/internal/cluster"
	"github.com/presave/presave/internal/redistest"
	"github.com/presave/presave/internal/store/storetest"
)

// binaries is the directory TestMain built the binaries into; in -short
// mode nothing is built and the test is skipped.
func binaries(t *testing.T) string {
	t.Helper()
	if binDir == "" {
		t.Skip("builds and runs the binaries")
	}
	return binDir
}

// TestBinariesStartAndStop runs the real binaries as processes: each
// applies migrations and answers /healthz; SIGTERM stops them cleanly and
// SIGKILL ends them at once.
func TestBinariesStartAndStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := binaries(t)
	db := storetest.New(t)
	rdb := redistest.New(t)
	c := cluster.New(cluster.Config{BinDir: bin, DatabaseURL: db.URL, MigrateURL: db.MigrateURL, RedisURL: rdb.URL, TokenKeys: db.Keys, AdminToken: "admin", LogDir: t.TempDir()})
	t.Cleanup(c.Close)

	if _, err := c.StartFake(ctx); err != nil {
		t.Fatal(err)
	}
	api, err := c.StartAPI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The configuration the processes run with passes preflight; the
	// fake refuses a wrong secret as Spotify would, and the exit says so.
	if out, err := c.Preflight(ctx); err != nil || !strings.Contains(out, "preflight passed") {
		t.Fatalf("preflight: %v\n%s", err, out)
	}
	out, err := c.Preflight(ctx, "SPOTIFY_CLIENT_SECRET=wrong")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "fail  spotify credentials") {
		t.Fatalf("preflight with a wrong secret: %v\n%s", err, out)
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
	bin := binaries(t)
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
				if !strings.Contains(out, tc.want) || !strings.Contains(out, "/dev/urandom") {
					t.Fatalf("%s error does not explain: %s", binName, out)
				}
			})
		}
	}
}
