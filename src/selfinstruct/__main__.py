"""``python -m selfinstruct`` runs the CLI."""

import sys

from selfinstruct.cli import main

sys.exit(main())
