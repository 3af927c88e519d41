package http

import (
	"testing"

	"github.com/joinincard/engine/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, "http") }
