"""`python -m gateway` is `hangw`."""

import sys

from gateway.cli import main

sys.exit(main())
