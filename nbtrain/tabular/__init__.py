"""The CSV product: reading tables (reading; in chunks or one rank's share: tablefile), a table file straight into
the training matrices (streaming), the fitted preprocessing (preprocessing), every fit and sweep
option with its default (options), the network and its training (recipe), the run folder (runfolder), the whole
of `nbtrain fit` below the command line (fit) and a saved model applied to a table (apply: predict, evaluate)."""
