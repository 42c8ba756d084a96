from bvae_tui.tui.app import main  # noqa: I001  (`python app.py` == `bvae-tui`)
raise SystemExit(main())
