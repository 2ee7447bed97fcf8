"""The test lab: real components the tests start for themselves (see docs/testing.md)."""
