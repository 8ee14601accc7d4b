from support.projects import orgloop_env  # noqa: F401  (fixture)
