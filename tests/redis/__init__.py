"""Tests of the Redis-backed shared rate limiter, against a real redis-server."""
