from heygemd.cli import entry

raise SystemExit(entry())
