"""The process: the command line, runtime selection, the demo.

The only layer that knows every other one: it reads the settings, opens the
runtime the operator chose, builds the server and hands it to a transport.
"""
