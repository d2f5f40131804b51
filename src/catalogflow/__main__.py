from catalogflow.cli import main

raise SystemExit(main())
