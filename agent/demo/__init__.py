"""`edge-agent demo`: both roles against a local broker, an operator's live view, a summary.

`agent.demo.run.main` is the entry point; `agent.demo.broker` the local Mosquitto the demo and
the tests start.
"""
