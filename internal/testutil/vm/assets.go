package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// assets are what every VM of this test binary boots: they are made once.
type assets struct {
	qemu      string
	kernel    string
	initramfs string
	release   string
}

type once[T any] struct {
	once sync.Once
	v    T
	err  error
	log  string
}

// shared holds what this test binary's VMs share, made by the first Run
// that needs it; tests never change it.
var shared struct { //nolint:gochecknoglobals // made once per test binary
	assets once[assets]
}

// getAssets finds QEMU, and the kernel and base initramfs made by
// hack/vm-kernel.sh; without them the test is Unavailable.
func getAssets(t *testing.T) assets {
	t.Helper()
	s := &shared.assets
	made := false
	s.once.Do(func() {
		made = true
		s.v, s.log, s.err = findAssets(context.WithoutCancel(t.Context()))
	})
	if made && s.log != "" {
		t.Logf("%s", s.log)
	}
	if s.err != nil {
		Unavailable(t, s.err.Error())
	}
	return s.v
}

func findAssets(ctx context.Context) (assets, string, error) {
	var a assets
	var err error
	if a.qemu, err = cmdrun.LookPath("qemu-system-x86_64"); err != nil {
		return a, "", fmt.Errorf("no QEMU (hack/install-deps.sh installs qemu-system-x86): %w", err)
	}
	root, err := moduleRoot()
	if err != nil {
		return a, "", err
	}
	script := filepath.Join(root, "hack", "vm-kernel.sh")
	var env []string
	for _, k := range []string{"WCP_VM_CACHE", "http_proxy", "https_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	out, err := cmdrun.Run(ctx, cmdrun.Cmd{Path: script, Env: env, Timeout: 10 * time.Minute})
	if err != nil {
		return a, "", fmt.Errorf("no kernel for the VM: %w", err)
	}
	// The directory is the last line; the lines before it say what was built.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	if !filepath.IsAbs(dir) {
		return a, "", fmt.Errorf("%s printed %q, want a directory", script, dir)
	}
	a.kernel = filepath.Join(dir, "vmlinuz")
	a.initramfs = filepath.Join(dir, "initramfs.gz")
	rel, err := os.ReadFile(filepath.Join(dir, "kernel.release"))
	if err != nil {
		return a, "", fmt.Errorf("no kernel for the VM: %w", err)
	}
	a.release = strings.TrimSpace(string(rel))
	return a, strings.Join(lines[:len(lines)-1], "\n"), nil
}

// moduleRoot is the directory of go.mod above the working directory (go
// test runs a package's tests in its directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory, to find hack/vm-kernel.sh")
		}
		dir = parent
	}
}

// testBinary builds this package's tests as a statically linked binary
// (no cgo, so no race detector): it runs in the VM's initramfs, which has no
// C library. Each test builds its own (the build cache makes it a link,
// about a second), so that nothing outlives the test.
func testBinary(t *testing.T) string {
	t.Helper()
	// `go test` puts its own toolchain first in PATH.
	goBin, err := cmdrun.LookPath("go", "/usr/local/go/bin")
	if err != nil {
		t.Fatalf("vm: the Go toolchain, to build the test binary for the VM: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "pkg.test")
	_, err = cmdrun.Run(t.Context(), cmdrun.Cmd{Path: goBin, Args: []string{"test", "-c", "-o", bin, "."},
		Env: append(os.Environ(), "CGO_ENABLED=0"), Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatalf("vm: build the static test binary: %v", err)
	}
	return bin
}

// writeInitrd writes to path the base initramfs (gzipped cpio) followed by
// a cpio archive with the test binary as /wcp/test and the script the init
// runs as /wcp/run: the kernel unpacks one archive after the other.
func writeInitrd(path, base, bin string, run []byte) (err error) {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	w := bufio.NewWriterSize(out, 1<<20)
	in, err := os.Open(base)
	if err != nil {
		return err
	}
	n, err := io.Copy(w, in)
	_ = in.Close() // read only
	if err != nil {
		return err
	}
	// An archive after a compressed one must start 4-byte aligned; the
	// kernel skips the zeros in between.
	if _, err := w.Write(make([]byte, (4-n%4)%4)); err != nil {
		return err
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	c := newCpio(w)
	c.file("wcp/test", 0o755, b)
	c.file("wcp/run", 0o755, run)
	if err := c.close(); err != nil {
		return err
	}
	return w.Flush()
}
