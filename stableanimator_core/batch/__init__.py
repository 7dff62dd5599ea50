"""Many animations in one run: a JSONL file of ``animate`` jobs, resumable, on a Ray cluster.

``jobs`` (reading, checking and fingerprinting the jobs; no Ray) and ``records`` (per-job results, the resume
marker and the summary) are plain Python; only ``ray_runner`` imports Ray, an optional dependency
(``pip install -r requirements-cluster.txt``) that nothing else in the pack needs.
"""
