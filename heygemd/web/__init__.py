"""`heygemd web`: the operator's read-only window (a page, /api/status, /metrics), in its own
process so that a fault here never stops the daemon. The folder stays the only way in."""
