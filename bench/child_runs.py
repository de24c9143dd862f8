"""What the benchmarks that train each configuration in a fresh Python process share: running the child,
streaming its log, and picking up the result it prints as one ``RESULT {json}`` line."""
from __future__ import annotations

import json
import subprocess


def emit(result: dict) -> None:
    """The child's side: hand ``result`` to the parent."""
    print("RESULT " + json.dumps(result), flush=True)


def run_child(command: list[str]) -> dict | None:
    """Run ``command``, echoing its output as it comes (a long run's log shows its progress); its last
    ``RESULT`` line as a dict, or None if it failed or printed none."""
    results = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            if line.startswith("RESULT "):
                results.append(json.loads(line[len("RESULT "):]))
            else:
                print(line, end="", flush=True)
    if process.returncode != 0 or not results:
        return None
    return results[-1]
