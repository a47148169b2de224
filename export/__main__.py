from sdk.export.cli import main

raise SystemExit(main())
