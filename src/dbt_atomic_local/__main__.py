from dbt_atomic_local.cli import main

raise SystemExit(main())
