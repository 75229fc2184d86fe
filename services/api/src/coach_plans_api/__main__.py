import sys

from coach_plans_api.cli import main

sys.exit(main())
