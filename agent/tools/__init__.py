"""The executor's tools and the sandbox actions run in."""
