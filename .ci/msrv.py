#!/usr/bin/env python3
"""The MSRV check CI can make with the one toolchain it has (no older one can be fetched):
every dependency's declared rust-version must be at most the workspace's, so a user on that
Rust can build the stack. Standard-library APIs newer than the MSRV are caught by clippy's
incompatible_msrv lint, which reads the same rust-version (the clippy step denies warnings).
"""
import json
import subprocess
import sys


def version(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
members = set(meta["workspace_members"])
ours = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
if len(ours) != 1 or None in ours:
    sys.exit(f"every workspace crate must inherit one rust-version, found {sorted(map(str, ours))}")
msrv = ours.pop()
needs = sorted(
    (version(p["rust_version"]), p["name"], p["version"])
    for p in meta["packages"]
    if p["id"] not in members and p.get("rust_version")
)
too_new = [n for n in needs if n[0] > version(msrv)]
highest = needs[-1] if needs else None
print(f"workspace rust-version {msrv}; highest among dependencies: "
      + (f"{'.'.join(map(str, highest[0]))} ({highest[1]} {highest[2]})" if highest else "none"))
if too_new:
    for v, name, ver in too_new:
        print(f"  {name} {ver} needs Rust {'.'.join(map(str, v))}")
    sys.exit("dependencies need a newer Rust than the workspace's rust-version")
