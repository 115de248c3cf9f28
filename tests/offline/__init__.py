"""Tests of taskflow.offline, the runtime that makes the notebooks work under moto."""
