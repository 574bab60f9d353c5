from simbank.simulate.cli import main

raise SystemExit(main())
