//go:build !race

package statement_test

const raceDetector = false
