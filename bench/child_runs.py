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


def config_names(parser, text: str, configs: dict) -> list[str]:
    """The comma-separated ``--configs`` value as names of ``configs``; an unknown one is argparse's error."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in configs]
    if unknown:
        parser.error(f"unknown configurations {unknown}; choose from {', '.join(configs)}")
    return names


def open_report(path, **about) -> dict:
    """The results file's report so far (a resumed benchmark keeps its finished runs), with this machine and
    ``about`` (data, command) written over the old header."""
    import os
    import platform
    from pathlib import Path

    path = Path(path)
    report = json.loads(path.read_text()) if path.is_file() else {}
    report.update(machine={"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                           "cpus": os.cpu_count()}, **about)
    return report
