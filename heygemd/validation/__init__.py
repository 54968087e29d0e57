"""Judging the user's inputs: what a job folder holds, its job.toml, its audio and videos.

Pure rules apart from the I/O that gathers their evidence:

- :mod:`.jobfiles`: the job-folder rules (which names are inputs, links, limits), shared by the
  daemon's inbox and ``heygemd validate``; :mod:`.jobtoml`: a job's ``[output]`` overrides.
- :mod:`.rules`: pure rules, measured evidence -> findings; :mod:`.audiostats`: pure measures
  of the audio (speech share, noise, clipping).
- :mod:`.examine`: the I/O edge (probe, decode, sample frames, find faces) -> findings;
  :mod:`.facecache`: its sampled faces kept by content; :mod:`.framepass`: its frame pass in a
  thread beside the engine; :mod:`.annotate`: pictures of findings.
- :mod:`.dryrun`: ``heygemd validate FOLDER``, the daemon's verdict without rendering.

Importing this package imports none of them: the daemon takes the folder rules alone.
"""
