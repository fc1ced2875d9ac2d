"""Benchmarks of modelmanager against the direct library calls, on the same machine and run.

Run ``python -m benchmarks`` (full, a few minutes on 2 cores), ``--quick`` for a
smoke run with smaller files and fewer repetitions, ``--only NAME`` for one
benchmark. Results are printed as a table and written to
``benchmarks/results.json``.

Every figure is the median of several repetitions in which our code and its
baseline alternate (the starting contender rotates each repetition), so a noisy
neighbour on the shared machine hits both sides alike. Compare the ratios, not
the absolute times: those move from run to run (see /work/shared/LIMITS.md).

Benchmarks (one module each):

* ``first_hash`` (:mod:`benchmarks.bench_first_hash`): hashing a 1 GiB file vs
  ``hashlib.file_digest``; target ≥ 0.95×.
* ``reverify`` (:mod:`benchmarks.bench_reverify`): re-verifying it from the
  digest cache; target ≤ 50 µs per call and ≥ 10,000× faster than re-hashing.
* ``parallel_two_files`` (:mod:`benchmarks.bench_parallel`): two files on two
  workers vs one; target ≥ 1.7× with two free cores.
* ``resolve_10_components`` (:mod:`benchmarks.bench_resolve`): a fresh
  ModelManager resolving, signing and keying 10 components; target ≤ 1 ms.
* ``runtime_overhead`` (:mod:`benchmarks.bench_runtime_overhead`): a call through
  our in-process ONNX and Triton (gRPC, HTTP) handles vs the raw onnxruntime /
  tritonclient call on the same 512→1024→512 MLP; target overhead ≤ max(3%, 5 µs).
* ``runs`` (:mod:`benchmarks.bench_runs`): a 10-component run through the Runner,
  cold vs cached re-run (reported, zero models opened when cached); and one run's
  bookkeeping (run index rows + manifest) vs the equivalent records in MLflow's
  SQLite tracking store; target ours ≥ 10× faster (PostgreSQL for reference).
"""
