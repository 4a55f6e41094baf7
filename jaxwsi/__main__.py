"""`python -m jaxwsi` is the `jaxwsi` command."""

from jaxwsi.cli import main

raise SystemExit(main())
