from simbank.cli import main

raise SystemExit(main())
