"""Camera code both roles use: frame sources (picamera2, V4L2, RTSP/HTTP, files) and their specs."""
