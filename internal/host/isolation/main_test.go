package isolation

import (
	"os"
	"testing"

	"github.com/wcp360/wcp360/internal/testutil/tenantio"
)

// The test binary is also the tenant's process in the kernel tests
// (tenantio).
func TestMain(m *testing.M) {
	if code, exit := tenantio.Main(); exit {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
