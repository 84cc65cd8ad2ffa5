package rdb

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// SetLogger sends go-redis's own log lines (a Sentinel naming a new
// master, a pool that cannot dial) to log, at warning level, instead of
// the standard library's logger on stderr, where they escaped the
// process's structured log. go-redis has one logger for the process:
// main calls this once. Its lines hold addresses and errors, never a
// password (go-redis does not print its options).
func SetLogger(log *slog.Logger) { redis.SetLogger(goRedisLogger{log}) }

type goRedisLogger struct{ l *slog.Logger }

func (g goRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	g.l.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}
