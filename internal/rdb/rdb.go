// Package rdb reads REDIS_URL, in each of its forms, into the two
// connections presave makes to Redis: asynq's (the queues) and a go-redis
// client for presave's own keys (the limiter, cooldowns, the YouTube
// budget, stop keys). The forms:
//
//	redis://[[user]:password@]host:port[/db][?options]    one server (rediss:// for TLS, unix:// for a socket)
//	redis-sentinel://[[user]:password@]host1:26379,host2:26379/mastername[?db=N&sentinel_password=…&tls=true]
//	redis-cluster://[[user]:password@]host1:7000,host2:7001[?tls=true]
//
// Sentinel: the sentinels' addresses and the master's name; both clients
// follow a failover to the new master. Cluster: some of the nodes (the
// rest are discovered); there is only database 0, and every multi-key
// script keeps its keys in one hash slot (asynq's keys carry the queue's
// hash tag, presave's the provider's: see ratelimit.Key).
package rdb

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Mode is which kind of Redis deployment a URL names.
type Mode string

// Modes.
const (
	Single   Mode = "single"
	Sentinel Mode = "sentinel"
	Cluster  Mode = "cluster"
)

// Conn is a parsed REDIS_URL.
type Conn struct {
	Mode Mode
	// Addrs: the server (Single), the sentinels (Sentinel), seed nodes
	// (Cluster).
	Addrs []string
	// Master is the Sentinel master's name.
	Master string
	// DB is the logical database (0 in Cluster).
	DB                 int
	Username, Password string
	// SentinelPassword authenticates to the sentinels (Sentinel only).
	SentinelPassword string
	TLS              *tls.Config
	// single keeps every option of a one-server URL (pool size,
	// timeouts…), as go-redis parses them.
	single *redis.Options
}

// Parse reads a REDIS_URL. Errors name the URL's form, never its password.
func Parse(raw string) (Conn, error) {
	scheme, _, _ := strings.Cut(raw, "://")
	switch scheme {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return Conn{}, fmt.Errorf("REDIS_URL: %w", err)
		}
		return Conn{Mode: Single, Addrs: []string{o.Addr}, DB: o.DB, Username: o.Username, Password: o.Password, TLS: o.TLSConfig, single: o}, nil
	case "redis-sentinel", "redis-cluster":
		return parseMulti(raw, Mode(strings.TrimPrefix(scheme, "redis-")))
	}
	return Conn{}, fmt.Errorf("REDIS_URL: unknown scheme %q: want redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://", scheme)
}

// parseMulti reads the Sentinel and Cluster forms, whose host part is a
// comma-separated list (which net/url does not take).
func parseMulti(raw string, mode Mode) (Conn, error) {
	c := Conn{Mode: mode}
	_, rest, _ := strings.Cut(raw, "://")
	rest, rawQuery, _ := strings.Cut(rest, "?")
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, pass, hasPass := strings.Cut(rest[:at], ":")
		var err error
		if c.Username, err = url.PathUnescape(user); err != nil {
			return c, fmt.Errorf("REDIS_URL: bad user name in the %s form", mode)
		}
		if hasPass {
			if c.Password, err = url.PathUnescape(pass); err != nil {
				return c, fmt.Errorf("REDIS_URL: bad password in the %s form", mode)
			}
		}
		rest = rest[at+1:]
	}
	hosts, path, _ := strings.Cut(rest, "/")
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			if _, port, ok := strings.Cut(h, ":"); !ok || port == "" {
				return c, fmt.Errorf("REDIS_URL: %q has no port (the %s form lists host:port pairs)", h, mode)
			}
			c.Addrs = append(c.Addrs, h)
		}
	}
	if len(c.Addrs) == 0 {
		return c, fmt.Errorf("REDIS_URL: the %s form needs at least one host:port", mode)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return c, fmt.Errorf("REDIS_URL: bad query: %w", err)
	}
	if err := c.options(q, path); err != nil {
		return c, err
	}
	return c, nil
}

// options applies the path and the query of a Sentinel or Cluster URL.
func (c *Conn) options(q url.Values, path string) error {
	allowed := map[string]bool{"tls": true}
	switch c.Mode {
	case Sentinel:
		allowed["db"], allowed["sentinel_password"] = true, true
		if c.Master = strings.Trim(path, "/"); c.Master == "" {
			return errors.New("REDIS_URL: the sentinel form names its master: redis-sentinel://host1:26379,host2:26379/mastername")
		}
	case Cluster:
		if strings.Trim(path, "/") != "" {
			return errors.New("REDIS_URL: the cluster form has no database or path (a cluster has only database 0)")
		}
	}
	for k := range q {
		if !allowed[k] {
			return fmt.Errorf("REDIS_URL: unknown option %q in the %s form", k, c.Mode)
		}
	}
	if v := q.Get("db"); v != "" {
		db, err := strconv.Atoi(v)
		if err != nil || db < 0 {
			return fmt.Errorf("REDIS_URL: db=%q is not a database number", v)
		}
		c.DB = db
	}
	c.SentinelPassword = q.Get("sentinel_password")
	if v := q.Get("tls"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("REDIS_URL: tls=%q is not true or false", v)
		}
		if on {
			c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	return nil
}

// Client returns a new go-redis client of the URL: each caller owns (and
// closes) its own, so its commands can be counted apart.
func (c Conn) Client() redis.UniversalClient {
	switch c.Mode {
	case Sentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: c.Master, SentinelAddrs: c.Addrs,
			SentinelPassword: c.SentinelPassword, Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLS})
	case Cluster:
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, Username: c.Username, Password: c.Password, TLSConfig: c.TLS})
	}
	o := *c.single
	return redis.NewClient(&o)
}

// Asynq is asynq's connection option for the URL.
func (c Conn) Asynq() asynq.RedisConnOpt {
	switch c.Mode {
	case Sentinel:
		return asynq.RedisFailoverClientOpt{MasterName: c.Master, SentinelAddrs: c.Addrs, SentinelPassword: c.SentinelPassword,
			Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLS}
	case Cluster:
		return asynq.RedisClusterClientOpt{Addrs: c.Addrs, Username: c.Username, Password: c.Password, TLSConfig: c.TLS}
	}
	o := c.single
	return asynq.RedisClientOpt{Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, TLSConfig: o.TLSConfig}
}

// String describes the connection without its credentials, for logs and
// reports.
func (c Conn) String() string {
	switch c.Mode {
	case Sentinel:
		return fmt.Sprintf("sentinel master %q via %s db %d", c.Master, strings.Join(c.Addrs, ","), c.DB)
	case Cluster:
		return "cluster via " + strings.Join(c.Addrs, ",")
	}
	return fmt.Sprintf("%s db %d", c.Addrs[0], c.DB)
}
