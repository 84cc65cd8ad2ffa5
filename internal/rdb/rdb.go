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
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

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

// ClusterStateReloadDefault is how often a Cluster client reloads the
// cluster's slot map while it is used (go-redis's default is a minute).
const ClusterStateReloadDefault = 5 * time.Second

// clusterReloadGap spaces the reloads reloadOnNetError starts.
const clusterReloadGap = 500 * time.Millisecond

// reloadOnNetError reloads a Cluster client's slot map when a command
// fails on the network. go-redis reloads it on a MOVED reply, not when a
// master stops answering: in a test on a real cluster, the slots of a
// master that died went on being sent to it long after its replica took
// them over, its periodic reload notwithstanding, while an explicit
// reload fixed the routing at once.
type reloadOnNetError struct {
	c    *redis.ClusterClient
	last *atomic.Int64 // unix nanoseconds of the last reload started
}

func (h reloadOnNetError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnNetError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after(err)
		return err
	}
}

func (h reloadOnNetError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.after(err)
		return err
	}
}

func (h reloadOnNetError) after(err error) {
	var ne net.Error
	if err == nil || !errors.As(err, &ne) && !strings.Contains(err.Error(), "CLUSTERDOWN") {
		return
	}
	now := time.Now().UnixNano()
	if last := h.last.Load(); now-last < int64(clusterReloadGap) || !h.last.CompareAndSwap(last, now) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.c.ReloadState(ctx)
	}()
}

// Client returns a new go-redis client of the URL: each caller owns (and
// closes) its own, so its commands can be counted apart. Each gets its
// own copy of the addresses: go-redis appends the nodes it discovers to
// the slice it was given, and clients sharing one backing array would
// write into it at once.
func (c Conn) Client() redis.UniversalClient {
	switch c.Mode {
	case Sentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: c.Master, SentinelAddrs: slices.Clone(c.Addrs),
			SentinelPassword: c.SentinelPassword, Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLS})
	case Cluster:
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: slices.Clone(c.Addrs), Username: c.Username, Password: c.Password, TLSConfig: c.TLS,
			ClusterStateReloadInterval: ClusterStateReloadDefault})
		cc.AddHook(reloadOnNetError{c: cc, last: &atomic.Int64{}})
		return cc
	}
	o := *c.single
	return redis.NewClient(&o)
}

// Asynq is asynq's connection option for the URL: it makes the same
// clients as Client (asynq's own Sentinel and Cluster options cannot set
// the cluster's reload interval).
func (c Conn) Asynq() asynq.RedisConnOpt { return connOpt{c} }

// connOpt is an asynq.RedisConnOpt making Conn's clients.
type connOpt struct{ c Conn }

// MakeRedisClient implements asynq.RedisConnOpt.
func (o connOpt) MakeRedisClient() any { return o.c.Client() }

// WithDB is c on logical database db (a Cluster has only 0).
func (c Conn) WithDB(db int) Conn {
	c.DB = db
	if c.single != nil {
		o := *c.single
		o.DB = db
		c.single = &o
	}
	return c
}

// URL writes c back as a REDIS_URL, credentials included (for a
// subprocess's environment, never for a log).
func (c Conn) URL() string {
	var user string
	if c.Username != "" || c.Password != "" {
		user = url.PathEscape(c.Username)
		if c.Password != "" {
			user += ":" + url.PathEscape(c.Password)
		}
		user += "@"
	}
	q := url.Values{}
	if c.TLS != nil && c.Mode != Single {
		q.Set("tls", "true")
	}
	switch c.Mode {
	case Sentinel:
		q.Set("db", strconv.Itoa(c.DB))
		if c.SentinelPassword != "" {
			q.Set("sentinel_password", c.SentinelPassword)
		}
		return "redis-sentinel://" + user + strings.Join(c.Addrs, ",") + "/" + url.PathEscape(c.Master) + "?" + q.Encode()
	case Cluster:
		u := "redis-cluster://" + user + strings.Join(c.Addrs, ",")
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		return u
	}
	scheme := "redis"
	if c.TLS != nil {
		scheme = "rediss"
	}
	return fmt.Sprintf("%s://%s%s/%d", scheme, user, c.Addrs[0], c.DB)
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
