package queue

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/redistest"
	"github.com/presave/presave/internal/store"
)

// TestPresaveTaskKeyIsAsynqs: the rescue decides a task vanished from
// the key PresaveTaskKey names, so that key must be where asynq keeps
// the task: present after an enqueue, gone after asynq deletes the task.
func TestPresaveTaskKeyIsAsynqs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rd := redistest.New(t)
	opt := asynq.RedisClientOpt{Addr: rd.Opt.Addr, DB: rd.Opt.DB, Password: rd.Opt.Password}
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { insp.Close() })
	s, err := New(Config{}, nil, rd.Client)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range providers.Names {
		d := store.DuePresave{ID: uuid.Must(uuid.NewV7()), Generation: 3, Provider: p,
			DueAt: time.Now().Add(time.Hour), FanID: uuid.Must(uuid.NewV7())}
		key := PresaveTaskKey(p, d.ID, d.Generation)
		if n := rd.Client.Exists(ctx, key).Val(); n != 0 {
			t.Fatalf("%s: %s exists before the enqueue", p, key)
		}
		if created, err := s.Enqueue(ctx, d); err != nil || !created {
			t.Fatalf("%s: enqueue: created=%v err=%v", p, created, err)
		}
		if n := rd.Client.Exists(ctx, key).Val(); n != 1 {
			t.Fatalf("%s: asynq keeps the task elsewhere than %s", p, key)
		}
		if err := insp.DeleteTask(QueueFor(p), PresaveTaskID(d.ID, d.Generation)); err != nil {
			t.Fatal(err)
		}
		if n := rd.Client.Exists(ctx, key).Val(); n != 0 {
			t.Errorf("%s: %s outlives the task", p, key)
		}
	}
}
