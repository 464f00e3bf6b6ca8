"""Analyses as a cold process runs them: `python -m tests.cold` reads `{"jobs": [[url, options],
...], "rules": [[kind, path], ...]}` as JSON on stdin and writes the result documents' status,
error and summary, in order, as JSON on stdout.

Each job runs in a child forked from this process, which has imported Thug and done nothing
else (no warm-up, no analysis of its own): what a thugrq horse saw before thugrq.warm, and the
reference that tests/test_warm.py holds a warm worker's results to.
"""

from __future__ import annotations

import json
import os
import sys

from thugrq import analysis, classifiers


def analyse_in_child(url: str, options: dict, rules: list[list[str]]) -> dict:
    """`url` analysed in a fresh child of this process, with the classifier `rules` too."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 1
        try:
            os.dup2(2, 1)  # Thug may print; stdout is the parent's answer channel
            for kind, path in rules:
                classifiers.add_rules(kind, path)
            document = analysis.analyze(url, options)
            with os.fdopen(write_fd, "w") as channel:
                json.dump({"status": document["status"], "error": document["error"], "summary": document["summary"]}, channel)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as channel:
        answer = channel.read()
    os.waitpid(pid, 0)
    return json.loads(answer)


def main() -> None:
    analysis.load_thug()
    given = json.load(sys.stdin)
    json.dump([analyse_in_child(url, options, given["rules"]) for url, options in given["jobs"]], sys.stdout)


if __name__ == "__main__":
    main()
