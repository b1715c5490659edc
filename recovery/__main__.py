from recovery.ui.cli import main

raise SystemExit(main())
