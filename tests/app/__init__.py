"""Tests of the process layer: the configuration it reads (settings) and doctor."""
