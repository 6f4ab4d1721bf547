package cgroup

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// envV1Role makes the test binary a helper process of the V1 tests (see
// v1Role).
const envV1Role = "WCP_TEST_V1_ROLE"

// v1Role runs a helper of the V1 tests:
//
//   - "tree": forks /bin/sleep as its very first action, prints its pid,
//     and sleeps until killed.
//   - "pids <pids dir>": forks /bin/sleep until fork fails, then prints a
//     v1PidsResult (JSON), kills its children and exits 0.
func v1Role(spec string) int {
	f := strings.Fields(spec)
	switch {
	case len(f) == 1 && f[0] == "tree":
		pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "600"}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("grandchild %d\n", pid)
		time.Sleep(10 * time.Minute)
		return 0
	case len(f) == 2 && f[0] == "pids":
		return v1ForkUntilRefused(f[1])
	}
	fmt.Fprintf(os.Stderr, "unknown V1 role %q\n", spec)
	return 2
}

// v1PidsResult is what the "pids" role saw.
type v1PidsResult struct {
	// Started children before fork failed with Errno.
	Started int    `json:"started"`
	Errno   string `json:"errno"`
	EAGAIN  bool   `json:"eagain"`
	// Current and Max are pids.current and pids.max read right after.
	Current string `json:"current"`
	Max     string `json:"max"`
	// Threads of this process then.
	Threads int `json:"threads"`
}

func v1ForkUntilRefused(pidsDir string) int {
	// Park some idle threads first: at the limit the Go runtime cannot make
	// one (it would die of it), and it has no need to with idle ones.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _ = unix.Nanosleep(&unix.Timespec{Nsec: 20e6}, nil) })
	}
	wg.Wait()
	var kids []int
	var r v1PidsResult
	for range 4096 {
		pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "600"}, &syscall.ProcAttr{})
		if err != nil {
			r.Errno, r.EAGAIN = err.Error(), errors.Is(err, syscall.EAGAIN)
			break
		}
		kids = append(kids, pid)
	}
	r.Started = len(kids)
	for _, v := range []struct {
		file string
		dst  *string
	}{{"pids.current", &r.Current}, {"pids.max", &r.Max}} {
		b, err := os.ReadFile(filepath.Join(pidsDir, v.file))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		*v.dst = strings.TrimSpace(string(b))
	}
	if ents, err := os.ReadDir("/proc/self/task"); err == nil {
		r.Threads = len(ents)
	}
	for _, pid := range kids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil)
	}
	b, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(string(b))
	return 0
}
