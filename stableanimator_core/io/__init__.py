"""Media files: reading driving videos, frame folders and images; writing H.264 mp4 (PyAV)."""
