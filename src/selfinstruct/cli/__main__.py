"""``python -m selfinstruct.cli`` runs the CLI."""

import sys

from selfinstruct.cli import main

sys.exit(main())
