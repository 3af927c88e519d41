//go:build race

package statement_test

// raceDetector: the race detector slows the XML decoder about tenfold.
const raceDetector = true
