"""`python -m quizzes practice|exam|review|cheatsheet|check`: see cli.py."""

from .cli import main

raise SystemExit(main())
