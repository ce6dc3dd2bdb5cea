"""The `stratarouter` command line."""
