package store

// Tune exposes tune to the external tests (store_test), which need testenv.
var Tune = tune
