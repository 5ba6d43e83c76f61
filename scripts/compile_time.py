#!/usr/bin/env python3
"""Compile-time cost of `#[supervised]`, shape by shape (see BENCHMARKS.md).

Generates, under a temporary directory, a throwaway workspace with three
crates per shape of loop (`SHAPES` below: `while` on a token, `loop` with
`continue`, `for`, `select!` arms, a `Result` with `?`, a cloned argument, a
`keep(...)` argument, the `tick` key, and all of the first kind at once),
each with the same N async fns (default 200), identical but for the
attribute on every fn:

    <shape>_supervised   #[supervised::supervised(name = "...", <the shape's keys>)]
    <shape>_tracing      #[tracing::instrument(skip(<the fn's arguments>))]
    <shape>_plain        none

All depend on the same crates (this workspace's `supervised` by path, tokio,
tokio-util, tracing), so the dependencies are built once and shared; then
each crate is rebuilt alone, interleaved (a shape's three crates one
after the other, in an order that rotates with each repetition), several
times, and each shape's ratio to `#[tracing::instrument]` (the median of
each repetition's own ratio) is printed (budget 1.2x). A rebuild is timed
from a touch of the crate's source (`--mode touch`, the default: an
incremental rebuild where the macro runs again and rustc reads its output
again, which is what an attribute adds to any edit-build cycle) or from
`cargo clean -p` (`--mode clean`, code generation included). Exits 1 if a
shape is over budget.

Also the cold build (fresh target directory, all dependencies) of a crate
depending only on `supervised-macros` against one depending only on
`tracing-attributes` (skipped with `--no-cold`).

Usage: scripts/compile_time.py [--jobs 2] [--reps 3] [--fns 200]
       [--mode touch|clean|both] [--shapes a,b] [--no-cold] [--keep]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `while` on a token, the shape the first measurement used (also the
# `tick` key's).
WHILE_TOKEN = """
{attr}
pub async fn {name}(cancel: CancellationToken) {{
    let mut ticks = 0u64;
    while !cancel.is_cancelled() {{
        tokio::time::sleep(Duration::from_millis(10)).await;
        ticks += 1;
        if ticks % 1000 == 0 {{
            tracing::debug!(ticks, "{name} ticking");
        }}
    }}
}}
"""

# Each shape of loop the attribute takes: the fn as a template (`{attr}` is
# the attribute, `{name}` the fn's name), the shape's attribute keys, and the
# arguments `#[tracing::instrument]` skips (all of them, as a user would for
# a token, a receiver or a shared counter).
SHAPES = {
    # `while` on a token.
    "while_token": dict(
        keys="",
        skip="cancel",
        fn=WHILE_TOKEN,
    ),
    # `loop` whose iterations also end at a `continue`.
    "loop_continue": dict(
        keys="",
        skip="cancel",
        fn="""
{attr}
pub async fn {name}(cancel: CancellationToken) {{
    let mut ticks = 0u64;
    loop {{
        if cancel.is_cancelled() {{
            break;
        }}
        tokio::time::sleep(Duration::from_millis(10)).await;
        ticks += 1;
        if ticks % 7 == 1 {{
            continue;
        }}
        tokio::task::yield_now().await;
    }}
}}
""",
    ),
    # `for` over an endless iterator of rounds (a stream of work items).
    "for_stream": dict(
        keys="",
        skip="cancel",
        fn="""
{attr}
pub async fn {name}(cancel: CancellationToken) {{
    for round in 0u64.. {{
        if cancel.is_cancelled() {{
            break;
        }}
        tokio::time::sleep(Duration::from_millis(10)).await;
        if round % 1000 == 0 {{
            tracing::debug!(round, "{name} ticking");
        }}
    }}
}}
""",
    ),
    # `tokio::select!` with three arms, one of them the token.
    "select_arms": dict(
        keys="",
        skip="cancel",
        fn="""
{attr}
pub async fn {name}(cancel: CancellationToken) {{
    let mut fast = tokio::time::interval(Duration::from_millis(10));
    let mut slow = tokio::time::interval(Duration::from_secs(1));
    loop {{
        tokio::select! {{
            _ = cancel.cancelled() => break,
            _ = fast.tick() => tokio::task::yield_now().await,
            at = slow.tick() => tracing::debug!(?at, "{name} slow tick"),
        }}
    }}
}}
""",
    ),
    # A `Result` return, with `?` inside the loop.
    "result_question": dict(
        keys="",
        skip="cancel",
        fn="""
{attr}
pub async fn {name}(cancel: CancellationToken) -> Result<(), std::io::Error> {{
    let mut ticks = 0u32;
    while !cancel.is_cancelled() {{
        tokio::time::sleep(Duration::from_millis(10)).await;
        ticks = ticks.checked_add(1).ok_or_else(|| std::io::Error::other("{name} overflow"))?;
    }}
    Ok(())
}}
""",
    ),
    # An argument cloned for every run.
    "cloned_arg": dict(
        keys="",
        skip="cancel, n",
        fn="""
{attr}
pub async fn {name}(cancel: CancellationToken, n: Arc<AtomicU64>) {{
    while !cancel.is_cancelled() {{
        tokio::time::sleep(Duration::from_millis(10)).await;
        n.fetch_add(1, Ordering::Relaxed);
    }}
}}
""",
    ),
    # A receiver kept across runs (`keep(...)`), drained by `while let`.
    "keep_arg": dict(
        keys=", keep(rx)",
        skip="rx",
        fn="""
{attr}
pub async fn {name}(mut rx: mpsc::Receiver<u64>) {{
    let mut total = 0u64;
    while let Some(job) = rx.recv().await {{
        total = total.wrapping_add(job);
        if total % 1000 == 0 {{
            tracing::debug!(total, "{name} drained");
        }}
    }}
}}
""",
    ),
    # The `tick` key on the first shape.
    "tick_key": dict(
        keys=', tick = "1s"',
        skip="cancel",
        fn=WHILE_TOKEN,
    ),
    # All at once: `loop` with `continue`, the `tick` key and a cloned
    # argument (the shape that measured 1.40x).
    "loop_tick_cloned": dict(
        keys=', tick = "1s"',
        skip="n",
        fn="""
{attr}
pub async fn {name}(n: Arc<AtomicU64>) {{
    let mut t = tokio::time::interval(Duration::from_secs(1));
    loop {{
        t.tick().await;
        if n.fetch_add(1, Ordering::Relaxed) % 7 == 1 {{
            continue;
        }}
        tokio::task::yield_now().await;
    }}
}}
""",
    ),
}

# The three crates of each shape, identical but for the attribute.
ATTRIBUTES = {
    "supervised": '#[supervised::supervised(name = "{name}"{keys})]',
    "tracing": "#[tracing::instrument(skip({skip}))]",
    "plain": "",
}

PRELUDE = [
    "//! Generated by scripts/compile_time.py.",
    "#![allow(unused_imports)]",
    "use std::sync::atomic::{AtomicU64, Ordering};",
    "use std::sync::Arc;",
    "use std::time::Duration;",
    "use tokio::sync::mpsc;",
    "use tokio_util::sync::CancellationToken;",
]

MANIFEST = """[package]
name = "{crate}"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
supervised = {{ path = "{root}" }}
tokio = {{ version = "1", features = ["rt", "time", "sync", "macros"] }}
tokio-util = "0.7"
tracing = "0.1"
"""

MACRO_ONLY = """[package]
name = "{crate}"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
{dep}
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def crate_name(shape, variant):
    return f"{shape}_{variant}"


def generate(base, fns, shapes):
    crates = [crate_name(shape, v) for shape in shapes for v in ATTRIBUTES]
    members = crates + ["cold_supervised_macros", "cold_tracing_attributes"]
    write(
        os.path.join(base, "Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [{}]\n".format(
            ", ".join(f'"{m}"' for m in members)
        ),
    )
    lock = os.path.join(ROOT, "Cargo.lock")
    if os.path.exists(lock):
        # Start from the same dependency versions as this workspace.
        shutil.copy(lock, os.path.join(base, "Cargo.lock"))
    for shape in shapes:
        spec = SHAPES[shape]
        for variant, attr in ATTRIBUTES.items():
            crate = crate_name(shape, variant)
            write(
                os.path.join(base, crate, "Cargo.toml"),
                MANIFEST.format(crate=crate, root=ROOT),
            )
            body = list(PRELUDE)
            for i in range(fns):
                name = f"loop_{i:03}"
                line = attr.format(name=name, keys=spec["keys"], skip=spec["skip"])
                body.append(spec["fn"].format(attr=line, name=name))
            write(os.path.join(base, crate, "src", "lib.rs"), "\n".join(body))
    write(
        os.path.join(base, "cold_supervised_macros", "Cargo.toml"),
        MACRO_ONLY.format(
            crate="cold_supervised_macros",
            dep='supervised-macros = {{ path = "{}" }}'.format(
                os.path.join(ROOT, "supervised-macros")
            ),
        ),
    )
    write(
        os.path.join(base, "cold_tracing_attributes", "Cargo.toml"),
        MACRO_ONLY.format(
            crate="cold_tracing_attributes", dep='tracing-attributes = "0.1"'
        ),
    )
    for crate in ["cold_supervised_macros", "cold_tracing_attributes"]:
        write(os.path.join(base, crate, "src", "lib.rs"), "//! Generated.\n")
    return crates


def cargo(base, target, jobs, *args):
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    env.pop("RUSTC_WRAPPER", None)  # no sccache: every build must compile
    cmd = ["cargo", *args, "--jobs", str(jobs)] if args[0] == "build" else ["cargo", *args]
    start = time.monotonic()
    subprocess.run(cmd, cwd=base, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def rebuild(base, target, jobs, crate, mode):
    """One timed rebuild of `crate` alone: after a touch of its source (what
    a user's edit-build cycle pays, incremental) or from clean."""
    if mode == "touch":
        os.utime(os.path.join(base, crate, "src", "lib.rs"))
    else:
        cargo(base, target, jobs, "clean", "-p", crate)
    return cargo(base, target, jobs, "build", "-p", crate)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--fns", type=int, default=200)
    parser.add_argument(
        "--mode",
        choices=["touch", "clean", "both"],
        default="touch",
        help="rebuild after a touch of the source (incremental), from `cargo clean -p`, or both",
    )
    parser.add_argument(
        "--shapes",
        default=",".join(SHAPES),
        help="comma-separated shapes to measure (default: all): " + ", ".join(SHAPES),
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the macro crates' cold builds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        parser.error(f"unknown shapes {unknown}; known: {', '.join(SHAPES)}")
    modes = ["touch", "clean"] if args.mode == "both" else [args.mode]

    base = tempfile.mkdtemp(prefix="supervised-compile-time-")
    failed = False
    try:
        crates = generate(base, args.fns, shapes)
        target = os.path.join(base, "target")
        print(f"# {args.fns} async loop fns per crate, --jobs {args.jobs}, {args.reps} repetitions, dev profile")
        print(f"# workspace: {base}")

        # Dependencies once, shared by every crate.
        build = ["build"] + [x for c in crates for x in ("-p", c)]
        t = cargo(base, target, args.jobs, *build)
        print(f"dependencies and first builds: {t:.1f} s (not counted)")

        variants = list(ATTRIBUTES)
        for mode in modes:
            times = {crate: [] for crate in crates}
            for rep in range(args.reps):
                # Interleaved: each shape's three crates one after the
                # other, so drift hits them alike, in an order that rotates
                # with each repetition, so no crate is always first.
                order = variants[rep % len(variants):] + variants[:rep % len(variants)]
                for shape in shapes:
                    for variant in order:
                        crate = crate_name(shape, variant)
                        times[crate].append(rebuild(base, target, args.jobs, crate, mode))
                print(f"{mode} repetition {rep + 1} done", flush=True)
            what = "after a touch of the source" if mode == "touch" else "from `cargo clean -p`"
            print(f"\n## rebuild {what} (dependencies built), {args.reps} repetitions")
            print("The ratios are medians of each repetition's own ratio (its range beside it); the times, medians.\n")
            print("| shape | `#[supervised]` | `#[tracing::instrument]` | none | supervised / instrument | (range) | supervised / none | verdict (<= 1.2x) |")
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            for shape in shapes:
                t = {v: times[crate_name(shape, v)] for v in ATTRIBUTES}
                med = {v: statistics.median(t[v]) for v in ATTRIBUTES}
                ratios = [a / b for a, b in zip(t["supervised"], t["tracing"])]
                ratio = statistics.median(ratios)
                over_plain = statistics.median(a / b for a, b in zip(t["supervised"], t["plain"]))
                failed |= ratio > 1.2
                print(
                    f"| `{shape}` | {med['supervised']:.2f} s | {med['tracing']:.2f} s | {med['plain']:.2f} s "
                    f"| **{ratio:.2f}x** | {min(ratios):.2f}-{max(ratios):.2f} | {over_plain:.2f}x "
                    f"| {'holds' if ratio <= 1.2 else 'FAILS'} |"
                )
            print("\nruns (s):")
            for crate in crates:
                print(f"  {crate:>28}: {['%.2f' % x for x in times[crate]]}")

        if not args.no_cold:
            print("\n## cold build of the macro crate (fresh target directory, all its dependencies)")
            cold = {"cold_supervised_macros": [], "cold_tracing_attributes": []}
            for rep in range(args.reps):
                for crate in cold:
                    fresh = os.path.join(base, f"target-cold-{crate}-{rep}")
                    cold[crate].append(cargo(base, fresh, args.jobs, "build", "-p", crate))
                    shutil.rmtree(fresh, ignore_errors=True)
            for crate, v in cold.items():
                print(f"{crate:>24}: median {statistics.median(v):.2f} s  {['%.2f' % x for x in v]}")
            r = statistics.median(cold["cold_supervised_macros"]) / statistics.median(cold["cold_tracing_attributes"])
            print(f"supervised-macros / tracing-attributes cold = {r:.2f}x")
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
