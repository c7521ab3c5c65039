"""What real clients do, ported from their source so that tests can replay it (see each module's header)."""
