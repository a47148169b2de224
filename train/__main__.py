from sdk.train.cli import main

raise SystemExit(main())
