"""nbtrain's benchmarks, run from the project root as modules (`python -m bench.course`); the course workloads
(workloads) and the pieces every script shares (common) are imported by the tests too."""
