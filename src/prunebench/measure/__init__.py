"""Latency, memory, accuracy and the machine fingerprint."""
from .fingerprint import fingerprint, git_commit
from .memory import param_bytes, peak_rss_child, state_file_bytes
from .timer import Measurement, Timer, interleaved_ms

__all__ = ["fingerprint", "git_commit", "param_bytes", "peak_rss_child", "state_file_bytes",
           "Measurement", "Timer", "interleaved_ms"]
