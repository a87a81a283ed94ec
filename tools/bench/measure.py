#!/usr/bin/env python3
"""Runs a command and prints its wall time and peak RSS as one JSON line on stderr's last line.

Usage: measure.py -- CMD [ARGS...]

A separate, import-free launcher: a child forked from a large process (one that has imported
torch, say) starts with that process's resident pages, which would inflate the child's peak RSS.
The command's stdout passes through unchanged.
"""
import json
import os
import subprocess
import sys
import time

args = sys.argv[sys.argv.index("--") + 1:]
start = time.perf_counter()
proc = subprocess.Popen(args)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"wall_s": wall, "peak_rss_bytes": usage.ru_maxrss * 1024, "exit": code}), file=sys.stderr)
sys.exit(code)
