"""The docker runtime: the platform in containers, sized to the spec's budgets.

Images: :mod:`.images` resolves which image each component runs (official,
offline or a user override); :mod:`.build` builds the project image and the
offline image set (:mod:`.debian` makes the Debian base, :mod:`.steps` runs
the long steps with progress); :mod:`.healthcheck` is the curl-free probe the
project image's compose healthchecks run.  Nothing heavy is imported here, so
``--help`` and ``doctor`` stay fast.
"""
