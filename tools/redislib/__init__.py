"""A real ``redis-server`` for tests and load runs, on a free loopback port in a scratch dir."""
