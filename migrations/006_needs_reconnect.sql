-- A pre-save the release was moved past: its grant expires before the new
-- time (Spotify's six months), so its token was purged and the fan must
-- connect again to keep it (a new consent reopens it as pending).
ALTER TABLE presaves DROP CONSTRAINT presaves_status_check;
ALTER TABLE presaves ADD CONSTRAINT presaves_status_check
    CHECK (status IN ('pending', 'enqueued', 'running', 'done', 'partial', 'failed', 'cancelled', 'needs_reconnect'));
