"""The CSV product: reading tables (reading), the fitted preprocessing (preprocessing), every fit and sweep
option with its default (options), the network and its training (recipe), the run folder (runfolder), the whole
of `nbtrain fit` below the command line (fit) and a saved model applied to a table (apply: predict, evaluate)."""
