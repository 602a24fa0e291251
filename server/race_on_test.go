//go:build race

package server

// raceOn: the race detector's shadow memory inflates RSS several times.
const raceOn = true
