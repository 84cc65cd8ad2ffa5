package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Private Redis and PostgreSQL servers for the reliability suite, which
// must restart them mid-drain: restarting the shared servers would break
// every other test and engineer using them. Each one listens on its own
// loopback port, keeps its data in a directory of the caller, and is
// ended by its own process ID or data directory only.

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	addr, err := FreeAddr()
	if err != nil {
		return 0, err
	}
	_, p, _ := net.SplitHostPort(addr)
	return strconv.Atoi(p)
}

// Redis is a private redis-server process: no persistence, so a restart
// loses everything, as a crashed cache would.
type Redis struct {
	Port int
	dir  string
	// extra are further arguments (a replica's --replicaof, a cluster
	// node's --cluster-enabled); sentinel, when set, is the sentinel's
	// configuration file, which it rewrites as it learns.
	extra    []string
	sentinel string
	cmd      *exec.Cmd
	done     chan struct{}
}

// StartRedis starts redis-server on a free loopback port, its files in
// dir, with extra arguments.
func StartRedis(ctx context.Context, dir string, extra ...string) (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server not installed: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &Redis{Port: port, dir: dir, extra: extra}
	return r, r.Start(ctx)
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// URL is the redis:// URL of database 0.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// Start (re)starts the server on its port and waits until it answers.
func (r *Redis) Start(ctx context.Context) error {
	if r.cmd != nil && !r.exited() {
		return errors.New("cluster: redis already running")
	}
	args := append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(r.Port),
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log")}, r.extra...)
	if r.sentinel != "" {
		args = []string{r.sentinel, "--sentinel"}
	}
	cmd := exec.Command("redis-server", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cluster: start redis-server: %w", err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(r.done)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if r.exited() || time.Now().After(deadline) {
			r.Kill()
			return fmt.Errorf("cluster: private redis on port %d did not start: %w", r.Port, err)
		}
		select {
		case <-ctx.Done():
			r.Kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *Redis) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Kill ends the server with SIGKILL and waits for it.
func (r *Redis) Kill() {
	if r.cmd == nil || r.cmd.Process == nil || r.exited() {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// Postgres is a private PostgreSQL cluster (initdb + pg_ctl). When we are
// root it runs as the postgres user, as PostgreSQL refuses root.
type Postgres struct {
	Port int
	bin  string
	data string
	as   string // the user to run as; "" for ourselves
}

// postgresBin finds the newest /usr/lib/postgresql/*/bin with initdb, or
// initdb on PATH.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found")
}

// StartPostgres initialises a cluster under dir and starts it on a free
// loopback port. When root, dir and its parents are opened for traversal
// (o+x) so the postgres user can reach the data directory.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pg := &Postgres{Port: port, bin: bin, data: filepath.Join(dir, "pgdata")}
	if err := os.MkdirAll(pg.data, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user to run PostgreSQL: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(pg.data, uid, gid); err != nil {
			return nil, err
		}
		for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err != nil {
				return nil, err
			}
			if fi.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
					return nil, err
				}
			}
		}
		pg.as = "postgres"
	}
	if out, err := pg.run(ctx, "initdb", "-D", pg.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, fmt.Errorf("cluster: initdb: %w\n%s", err, out)
	}
	return pg, pg.Start(ctx)
}

func (pg *Postgres) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(pg.bin, tool)
	var cmd *exec.Cmd
	if pg.as != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", pg.as, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = pg.data
	return cmd.CombinedOutput()
}

// URL is the URL of the postgres database.
func (pg *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.Port)
}

// Start starts the server and waits until it accepts connections.
func (pg *Postgres) Start(ctx context.Context) error {
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c max_connections=200", pg.Port, pg.data)
	if out, err := pg.run(ctx, "pg_ctl", "-D", pg.data, "-l", filepath.Join(pg.data, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		return fmt.Errorf("cluster: pg_ctl start: %w\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, pg.URL())
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: private PostgreSQL on port %d does not answer: %w", pg.Port, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Crash stops the server at once (pg_ctl -m immediate: no checkpoint, as
// if it had crashed); the next Start recovers from the WAL.
func (pg *Postgres) Crash(ctx context.Context) error {
	if out, err := pg.run(ctx, "pg_ctl", "-D", pg.data, "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("cluster: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Stop shuts the server down (fast mode); it is a no-op when it is not
// running.
func (pg *Postgres) Stop(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(pg.data, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := pg.run(ctx, "pg_ctl", "-D", pg.data, "-m", "fast", "-w", "stop"); err != nil {
		return fmt.Errorf("cluster: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}
