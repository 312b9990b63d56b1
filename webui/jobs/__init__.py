"""Durable batch jobs: big files run in the background, survive restarts and kill -9, and stream their results."""
