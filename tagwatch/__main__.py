from tagwatch.cli import main

raise SystemExit(main())
