// Package cluster runs presave's real binaries (fake provider, API,
// workers) as separate processes on loopback, for the demo, the benchmark
// and the reliability suite. It builds the binaries once, wires their
// environment (database, Redis, token keys, the fake's URLs) and lets a
// caller stop, kill and restart them.
package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/presave/presave/internal/providers/fake"
)

// Build compiles cmd/api, cmd/worker and cmd/fakeprovider into dir.
func Build(ctx context.Context, dir string) error {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), "./cmd/api", "./cmd/worker", "./cmd/fakeprovider")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cluster: go build: %w\n%s", err, out)
	}
	return nil
}

// ModuleRoot finds the directory holding go.mod.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("cluster: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("cluster: not inside the presave module")
	}
	return filepath.Dir(mod), nil
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Config describes a cluster.
type Config struct {
	BinDir      string // where Build put the binaries
	DatabaseURL string
	// MigrateURL is DATABASE_MIGRATE_URL when it differs (PgBouncer).
	MigrateURL string
	RedisURL   string
	TokenKeys  string
	AdminToken string
	// Env is added to every process (e.g. WORKER_CONCURRENCY).
	Env []string
	// LogDir receives one log file per process; empty means discard.
	LogDir string
}

// Cluster is a set of running processes.
type Cluster struct {
	cfg     Config
	FakeURL string // set by StartFake
	APIURL  string // set by StartAPI

	mu    sync.Mutex
	procs []*Proc
	n     map[string]int
	// appleKey and applePub are the cluster's MusicKit key (.p8 and its
	// public half), made when the first fake starts.
	appleKey, applePub []byte
}

// New prepares a cluster; nothing runs yet.
func New(cfg Config) *Cluster { return &Cluster{cfg: cfg, n: map[string]int{}} }

// Proc is one running binary.
type Proc struct {
	Name string
	Addr string // its HTTP listen address
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  io.Closer
}

// env is the environment shared by the API and the workers.
func (c *Cluster) env() []string {
	env := []string{
		"DATABASE_URL=" + c.cfg.DatabaseURL,
		"DATABASE_MIGRATE_URL=" + c.cfg.MigrateURL,
		"REDIS_URL=" + c.cfg.RedisURL,
		"TOKEN_KEYS=" + c.cfg.TokenKeys,
		"ADMIN_TOKEN=" + c.cfg.AdminToken,
		"LOG_LEVEL=warn",
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
	}
	if c.FakeURL != "" {
		for _, kv := range fake.URLs(c.FakeURL).Env() {
			env = append(env, kv[0]+"="+kv[1])
		}
		if c.appleKey != nil {
			for _, kv := range fake.AppleEnv(c.appleKey) {
				env = append(env, kv[0]+"="+kv[1])
			}
		}
	}
	if c.APIURL != "" {
		env = append(env, "PUBLIC_URL="+c.APIURL)
	}
	return append(env, c.cfg.Env...)
}

func (c *Cluster) start(ctx context.Context, bin, addrVar, addr string, extra []string) (*Proc, error) {
	if addr == "" {
		var err error
		if addr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	c.n[bin]++
	name := fmt.Sprintf("%s-%d", bin, c.n[bin])
	c.mu.Unlock()

	cmd := exec.Command(filepath.Join(c.cfg.BinDir, bin))
	cmd.Env = append(append(c.env(), addrVar+"="+addr), extra...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &Proc{Name: name, Addr: addr, cmd: cmd, done: make(chan struct{})}
	if c.cfg.LogDir != "" {
		f, err := os.Create(filepath.Join(c.cfg.LogDir, name+".log"))
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr, p.log = f, f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cluster: start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		if p.log != nil {
			p.log.Close()
		}
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	if err := p.waitHealthy(ctx); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

func (p *Proc) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	url := "http://" + p.Addr + "/healthz"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("cluster: %s exited before it was healthy: %v", p.Name, p.err)
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s not healthy at %s: %w", p.Name, url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SetAppleKey makes processes started later use p8 as their MusicKit key
// (for a fake the caller runs itself and registered the key with).
func (c *Cluster) SetAppleKey(p8 []byte) { c.appleKey = p8 }

// StartFake starts the fake provider; FakeURL points at it afterwards, and
// processes started later are configured to use it.
func (c *Cluster) StartFake(ctx context.Context, extra ...string) (*Proc, error) {
	p, err := c.start(ctx, "fakeprovider", "FAKE_ADDR", "", extra)
	if err != nil {
		return nil, err
	}
	c.FakeURL = "http://" + p.Addr
	// The cluster's MusicKit key, known to every fake it starts (a
	// restarted one too), as Apple knows a team's keys.
	if c.appleKey == nil {
		if c.appleKey, c.applePub, err = fake.GenerateAppleKey(); err != nil {
			return nil, err
		}
	}
	if err := fake.RegisterAppleKey(ctx, c.FakeURL, c.applePub); err != nil {
		return nil, err
	}
	return p, nil
}

// StartAPI starts an API process; APIURL points at the first one.
func (c *Cluster) StartAPI(ctx context.Context, extra ...string) (*Proc, error) {
	// The API must know its own public URL before it starts (OAuth
	// redirect URIs), so the address is chosen first.
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	if c.APIURL == "" {
		c.APIURL = "http://" + addr
	}
	return c.start(ctx, "api", "API_ADDR", addr, extra)
}

// StartWorker starts a worker process.
func (c *Cluster) StartWorker(ctx context.Context, extra ...string) (*Proc, error) {
	return c.start(ctx, "worker", "WORKER_ADDR", "", extra)
}

// Kill sends SIGKILL to the process group: no goodbye, as in a crash.
func (p *Proc) Kill() {
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// Stop asks the process to shut down (SIGTERM) and waits up to timeout
// before killing it.
func (p *Proc) Stop(timeout time.Duration) error {
	if p.cmd.Process == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var ee *exec.ExitError
		if p.err != nil && !errors.As(p.err, &ee) {
			return p.err
		}
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("cluster: %s did not stop within %s", p.Name, timeout)
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Close stops every process still running.
func (c *Cluster) Close() {
	c.mu.Lock()
	procs := append([]*Proc(nil), c.procs...)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		if !p.Exited() {
			wg.Add(1)
			go func() { defer wg.Done(); _ = p.Stop(20 * time.Second) }()
		}
	}
	wg.Wait()
}

// Tail returns the last lines of a process's log, for error messages.
func (c *Cluster) Tail(p *Proc, lines int) string {
	if c.cfg.LogDir == "" {
		return ""
	}
	f, err := os.Open(filepath.Join(c.cfg.LogDir, p.Name+".log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	var buf []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		buf = append(buf, sc.Text())
		if len(buf) > lines {
			buf = buf[1:]
		}
	}
	return strings.Join(buf, "\n")
}

// Preflight runs `worker preflight` with the environment the workers
// get (extra on top) and returns its report; the error is its exit.
func (c *Cluster) Preflight(ctx context.Context, extra ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.cfg.BinDir, "worker"), "preflight")
	cmd.Env = append(c.env(), extra...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// RunOnce runs a binary to completion with env (on top of PATH and HOME)
// and returns its combined output.
func RunOnce(ctx context.Context, binDir, name string, env ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
