package preflight

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/rdb"
	"github.com/presave/presave/internal/store"
)

// checkPostgres connects to DATABASE_URL, reads the server's version and
// compares the schema's version with this build's migrations; a store
// is kept open for the checks that read data.
func (r *run) checkPostgres(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	c := Check{Name: "postgres", Status: OK}
	where := databaseName(r.cfg.DatabaseURL)
	current, latest, err := store.MigrationStatus(cctx, r.cfg.MigrateURL)
	if err != nil {
		c.Status, c.Detail = Fail, fmt.Sprintf("%s: %v", where, err)
		c.Fix = "check DATABASE_URL (host, port, database, user, password, sslmode) and that PostgreSQL accepts connections from here"
		r.add(c)
		return
	}
	st, err := store.Open(cctx, r.cfg.DatabaseURL, r.cfg.Ring)
	if err != nil {
		c.Status, c.Detail = Fail, fmt.Sprintf("%s: %v", where, err)
		r.add(c)
		return
	}
	var version string
	if err := st.Pool().QueryRow(cctx, `SHOW server_version`).Scan(&version); err != nil {
		st.Close()
		c.Status, c.Detail = Fail, fmt.Sprintf("%s: %v", where, err)
		r.add(c)
		return
	}
	c.Detail = fmt.Sprintf("PostgreSQL %s at %s, schema at version %d of %d", version, where, current, latest)
	switch {
	case current < latest:
		c.Status = Fail
		c.Fix = "run `worker migrate` (the API and the workers also migrate when they start)"
	case current > latest:
		c.Status = Fail
		c.Fix = "the database was migrated by a newer presave: deploy that version, not this one"
	}
	r.add(c)
	if c.Status == OK {
		r.st = st
	} else {
		st.Close()
	}
}

// databaseName is host/database of a DATABASE_URL, without credentials.
func databaseName(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "DATABASE_URL"
	}
	return fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
}

// checkRedis pings REDIS_URL and reads the server's version, mode and
// role: the queues and our keys need a writable primary.
func (r *run) checkRedis(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	c := Check{Name: "redis", Status: OK}
	conn, err := rdb.Parse(r.cfg.RedisURL)
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, err.Error(), "give REDIS_URL in one of the forms the README's configuration table lists"
		r.add(c)
		return
	}
	client := conn.Client()
	defer client.Close()
	info, err := client.Info(cctx, "server", "replication").Result()
	if err != nil {
		c.Status, c.Detail = Fail, fmt.Sprintf("%s: %v", conn, err)
		c.Fix = "check REDIS_URL (hosts, ports, password, db) and that Redis accepts connections from here"
		r.add(c)
		return
	}
	fields := infoFields(info)
	c.Detail = fmt.Sprintf("Redis %s (%s, %s) at %s", fields["redis_version"], fields["redis_mode"], fields["role"], conn)
	if fields["role"] != "master" {
		c.Status = Fail
		c.Fix = "point REDIS_URL at the primary: a replica refuses the writes every queue makes"
	}
	r.add(c)
}

// infoFields parses the "key:value" lines of INFO.
func infoFields(info string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}
