"""The job farm: one intake (`heygemd run` with ``[farm] broker``) and Celery workers
(`heygemd worker`) sharing the inbox's share; see docs/farm.md."""
