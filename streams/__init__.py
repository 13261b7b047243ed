"""Wiring: settings, brokers, topics, the Faust app factory, REST, the command line."""
