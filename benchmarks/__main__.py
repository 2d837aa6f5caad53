"""``python -m benchmarks`` runs the comparison harness (``python -m benchmarks.compare``)."""

from benchmarks.compare import main

raise SystemExit(main())
