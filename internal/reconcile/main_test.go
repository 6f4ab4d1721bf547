package reconcile

import (
	"os"
	"testing"

	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
