package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// MarkEnqueued moves a pending pre-save of the given generation to
// enqueued, just before its task is put into the queue. It reports false
// when the pre-save is no longer pending at that generation (rescheduled,
// cancelled, already claimed). If the process dies before the task is
// queued, the relay finds the enqueued row without a task and queues it.
func (s *Store) MarkEnqueued(ctx context.Context, id uuid.UUID, generation int) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE presaves SET status = 'enqueued', enqueued_at = now(), updated_at = now()
		WHERE id = $1 AND generation = $2 AND status = 'pending'`, id, generation)
	if err != nil {
		return false, fmt.Errorf("store: mark enqueued: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
