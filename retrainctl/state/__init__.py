"""What retrainctl keeps on disk between stateless runs: the append-only state log with its
segments and cached folds, the versioned model store, the scheduling cache and the side files
`status` reads."""
