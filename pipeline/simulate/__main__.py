from pipeline.simulate.cli import main

raise SystemExit(main())
