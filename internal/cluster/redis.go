package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis deployments beyond one server, from the same redis-server binary,
// for the tests and the reliability suite: a Sentinel setup and a Redis
// Cluster, every process private (own loopback port, own directory).

// SentinelMaster is the master name the private sentinels monitor.
const SentinelMaster = "presave"

// RedisSentinel is one master, its replicas and three sentinels.
type RedisSentinel struct {
	Master    *Redis
	Replicas  []*Redis
	Sentinels []*Redis
}

// StartRedisSentinel starts a master, replicas replicas of it and three
// sentinels with a quorum of two, which fail over a master that stops
// answering for a second, and waits until every sentinel sees the
// replicas and the other sentinels.
func StartRedisSentinel(ctx context.Context, dir string, replicas int) (s *RedisSentinel, err error) {
	s = &RedisSentinel{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Master, err = StartRedis(ctx, filepath.Join(dir, "master")); err != nil {
		return s, err
	}
	for i := range replicas {
		r, err := StartRedis(ctx, filepath.Join(dir, fmt.Sprintf("replica-%d", i)), "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port))
		if err != nil {
			return s, err
		}
		s.Replicas = append(s.Replicas, r)
	}
	for i := range 3 {
		r, err := startSentinel(ctx, filepath.Join(dir, fmt.Sprintf("sentinel-%d", i)), s.Master.Port)
		if err != nil {
			return s, err
		}
		s.Sentinels = append(s.Sentinels, r)
	}
	return s, s.waitKnown(ctx, replicas)
}

// startSentinel starts a sentinel monitoring the master on masterPort.
func startSentinel(ctx context.Context, dir string, masterPort int) (*Redis, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf(`bind 127.0.0.1
port %d
dir %s
logfile %s
sentinel resolve-hostnames no
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %[4]s 1000
sentinel failover-timeout %[4]s 10000
sentinel parallel-syncs %[4]s 1
`, port, dir, filepath.Join(dir, "sentinel.log"), SentinelMaster, masterPort)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	r := &Redis{Port: port, dir: dir, sentinel: conf}
	return r, r.Start(ctx)
}

// waitKnown waits until every sentinel knows the replicas and the two
// other sentinels: only then can they agree on a failover.
func (s *RedisSentinel) waitKnown(ctx context.Context, replicas int) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, sn := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		for {
			reps, rerr := c.Replicas(ctx, SentinelMaster).Result()
			peers, perr := c.Sentinels(ctx, SentinelMaster).Result()
			if rerr == nil && perr == nil && len(reps) >= replicas && len(peers) >= len(s.Sentinels)-1 {
				break
			}
			if time.Now().After(deadline) {
				_ = c.Close()
				return fmt.Errorf("cluster: sentinel on port %d sees %d replicas and %d sentinels (%v, %v)", sn.Port, len(reps), len(peers), rerr, perr)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = c.Close()
	}
	return nil
}

// URL is REDIS_URL's Sentinel form for the setup.
func (s *RedisSentinel) URL() string {
	var addrs []string
	for _, sn := range s.Sentinels {
		addrs = append(addrs, sn.Addr())
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/" + SentinelMaster
}

// MasterAddr asks the sentinels which server is the master now.
func (s *RedisSentinel) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, sn := range s.Sentinels {
		if sn.exited() {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = c.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1], nil
		}
		last = err
	}
	return "", fmt.Errorf("cluster: no sentinel names the master: %v", last)
}

// WaitFailover waits until the sentinels name a master other than from
// (the one killed), and returns it.
func (s *RedisSentinel) WaitFailover(ctx context.Context, from string) (string, error) {
	var now string
	err := waitUntil(ctx, 45*time.Second, func() error {
		addr, err := s.MasterAddr(ctx)
		if err != nil {
			return err
		}
		if now = addr; addr == from {
			return fmt.Errorf("cluster: no failover: the master is still %s", from)
		}
		return nil
	})
	return now, err
}

// Close kills every process of the setup.
func (s *RedisSentinel) Close() {
	for _, r := range append(append([]*Redis{s.Master}, s.Replicas...), s.Sentinels...) {
		if r != nil {
			r.Kill()
		}
	}
}

// RedisCluster is a Redis Cluster of private servers: masters sharing the
// 16384 slots evenly, each with its replicas.
type RedisCluster struct {
	Masters  []*Redis
	Replicas []*Redis
	// ids are the masters' node IDs.
	ids map[*Redis]string
}

// StartRedisCluster starts masters nodes with replicasEach replicas each,
// joins them (CLUSTER MEET), gives each master its share of the slots
// and waits until every node reports the cluster ok.
func StartRedisCluster(ctx context.Context, dir string, masters, replicasEach int) (c *RedisCluster, err error) {
	c = &RedisCluster{ids: map[*Redis]string{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	node := func(name string) (*Redis, error) {
		return StartRedis(ctx, filepath.Join(dir, name), "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
	}
	for i := range masters {
		r, err := node(fmt.Sprintf("master-%d", i))
		if err != nil {
			return c, err
		}
		c.Masters = append(c.Masters, r)
		for j := range replicasEach {
			rep, err := node(fmt.Sprintf("replica-%d-%d", i, j))
			if err != nil {
				return c, err
			}
			c.Replicas = append(c.Replicas, rep)
		}
	}
	if err := c.join(ctx, replicasEach); err != nil {
		return c, err
	}
	return c, c.waitOK(ctx)
}

// join meets every node with the first, assigns the slots and makes each
// replica follow its master.
func (c *RedisCluster) join(ctx context.Context, replicasEach int) error {
	all := c.nodes()
	first := c.Masters[0]
	for _, r := range all {
		if err := command(ctx, r, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(first.Port)); err != nil {
			return err
		}
	}
	per := 16384 / len(c.Masters)
	for i, m := range c.Masters {
		lo, hi := i*per, (i+1)*per-1
		if i == len(c.Masters)-1 {
			hi = 16383
		}
		if err := command(ctx, m, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			return err
		}
	}
	for i, m := range c.Masters {
		id, err := nodeID(ctx, m)
		if err != nil {
			return err
		}
		c.ids[m] = id
		for j := range replicasEach {
			rep := c.Replicas[i*replicasEach+j]
			if err := waitUntil(ctx, 20*time.Second, func() error { return command(ctx, rep, "CLUSTER", "REPLICATE", id) }); err != nil {
				return fmt.Errorf("cluster: replica on port %d: %w", rep.Port, err)
			}
		}
	}
	return nil
}

// waitOK waits until every node says cluster_state:ok and every replica
// is in sync with its master (a replica that never synced will not be
// promoted).
func (c *RedisCluster) waitOK(ctx context.Context) error {
	for _, r := range c.Replicas {
		if err := waitUntil(ctx, 30*time.Second, func() error { return says(ctx, r, "master_link_status:up", "INFO", "replication") }); err != nil {
			return fmt.Errorf("cluster: replica: %w", err)
		}
	}
	for _, r := range c.nodes() {
		if err := waitUntil(ctx, 30*time.Second, func() error { return says(ctx, r, "cluster_state:ok", "CLUSTER", "INFO") }); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	return nil
}

// nodes is every node of the cluster, masters first.
func (c *RedisCluster) nodes() []*Redis {
	return append(append([]*Redis{}, c.Masters...), c.Replicas...)
}

// says checks that r's answer to the command args holds want.
func says(ctx context.Context, r *Redis, want string, args ...any) error {
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	out, err := cl.Do(ctx, args...).Text()
	if err != nil {
		return fmt.Errorf("node on port %d: %w", r.Port, err)
	}
	if !strings.Contains(out, want) {
		return fmt.Errorf("node on port %d: no %q in %v", r.Port, want, args)
	}
	return nil
}

// WaitPromoted waits, after dead (a master) was killed, until a replica
// took its slots and the surviving nodes report the cluster ok.
func (c *RedisCluster) WaitPromoted(ctx context.Context, dead *Redis) error {
	var alive []*Redis
	for _, r := range c.nodes() {
		if r != dead && !r.exited() {
			alive = append(alive, r)
		}
	}
	id := c.ids[dead]
	return waitUntil(ctx, 45*time.Second, func() error {
		// CLUSTER NODES: "<id> <addr> <flags> <master> <ping> <pong>
		// <epoch> <link> [<slots>...]": the dead master is marked failed
		// ("fail", not the suspicion "fail?") and holds no slot.
		cl := redis.NewClient(&redis.Options{Addr: alive[0].Addr()})
		nodes, err := cl.ClusterNodes(ctx).Result()
		_ = cl.Close()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(nodes, "\n") {
			f := strings.Fields(line)
			if len(f) >= 8 && f[0] == id && (!strings.Contains(f[2], "fail") || strings.Contains(f[2], "fail?") || len(f) > 8) {
				return fmt.Errorf("the killed master is not failed over yet: %s", line)
			}
		}
		for _, r := range alive {
			if err := says(ctx, r, "cluster_state:ok", "CLUSTER", "INFO"); err != nil {
				return err
			}
		}
		return nil
	})
}

// URL is REDIS_URL's Cluster form, naming the masters as seeds.
func (c *RedisCluster) URL() string {
	var addrs []string
	for _, m := range c.Masters {
		addrs = append(addrs, m.Addr())
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// Close kills every node.
func (c *RedisCluster) Close() {
	for _, r := range c.nodes() {
		r.Kill()
	}
}

// command runs one command on r.
func command(ctx context.Context, r *Redis, args ...any) error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	return c.Do(ctx, args...).Err()
}

// nodeID is r's cluster node ID.
func nodeID(ctx context.Context, r *Redis) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	return c.Do(ctx, "CLUSTER", "MYID").Text()
}

// waitUntil retries fn every 100 ms until it succeeds or d passes.
func waitUntil(ctx context.Context, d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
