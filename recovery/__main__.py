from recovery.ui.entry import main

raise SystemExit(main())
