from pushcore.cli import main

raise SystemExit(main())
