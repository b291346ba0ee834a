"""Camera gateway vision: sources, motion-gated detection, zones, rules and detection events.

Importing this package is cheap: OpenCV, numpy and onnxruntime are imported by the modules that
need them, so the main config can import `agent.vision.config` on a patrol device without them.
"""
