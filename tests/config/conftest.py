from support.projects import installed_plugins_only, orgloop_env  # noqa: F401  (fixtures)
