"""`python -m m2mgate` is the same program as the `m2mgate` console script."""

from m2mgate.cli import main

raise SystemExit(main())
