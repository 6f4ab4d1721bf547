package vm

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readCpio parses a newc archive into name -> content (test helper).
func readCpio(t *testing.T, b []byte) map[string]string {
	t.Helper()
	files := map[string]string{}
	for off := 0; ; {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no cpio header at %d", off)
		}
		field := func(i int) int {
			n, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
		size, namesize := field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		off += 110 + namesize
		off += (4 - off%4) % 4
		if name == "TRAILER!!!" {
			return files
		}
		files[name] = string(b[off : off+size])
		off += size
		off += (4 - off%4) % 4
	}
}

func TestCpio(t *testing.T) {
	var buf bytes.Buffer
	c := newCpio(&buf)
	c.file("wcp/test", 0o755, []byte("binary"))
	c.file("wcp/run", 0o755, []byte("#!/bin/sh\n"))
	c.file("empty", 0o644, nil)
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive of %d bytes, want a multiple of 4", buf.Len())
	}
	want := map[string]string{"wcp/test": "binary", "wcp/run": "#!/bin/sh\n", "empty": ""}
	if d := cmp.Diff(want, readCpio(t, buf.Bytes())); d != "" {
		t.Errorf("archive (-want +got):\n%s", d)
	}
}

func TestWriteInitrd(t *testing.T) {
	dir := t.TempDir()
	base, bin, out := filepath.Join(dir, "base"), filepath.Join(dir, "bin"), filepath.Join(dir, "initrd")
	for p, s := range map[string]string{base: "gzip!", bin: "ELF"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeInitrd(out, base, bin, []byte("run")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The appended archive starts 4-byte aligned, after zeros.
	if string(b[:8]) != "gzip!\x00\x00\x00" {
		t.Fatalf("initrd starts %q", b[:8])
	}
	want := map[string]string{"wcp/test": "ELF", "wcp/run": "run"}
	if d := cmp.Diff(want, readCpio(t, b[8:])); d != "" {
		t.Errorf("appended archive (-want +got):\n%s", d)
	}
}

func TestReadResult(t *testing.T) {
	tests := []struct {
		name, disk string
		want       result
		wantErr    bool
	}{
		{"pass", "WCP360-VM-RESULT 0 5\nhello\x00\x00\x00", result{0, []byte("hello")}, false},
		{"fail", "WCP360-VM-RESULT 1 3\nbad", result{1, []byte("bad")}, false},
		{"blank", "\x00\x00\x00\x00", result{}, true},
		{"short", "WCP360-VM-RESULT 0 99\nx", result{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "results.img")
			if err := os.WriteFile(p, []byte(tt.disk), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readResult(p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("readResult: %v, want error %v", err, tt.wantErr)
			}
			if d := cmp.Diff(tt.want, got, cmp.AllowUnexported(result{})); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
		})
	}
}

func TestTestResult(t *testing.T) {
	out := []byte("=== RUN   TestA\n--- PASS: TestAB (0.00s)\n--- SKIP: TestA (0.01s)\r\nPASS\n")
	if got := testResult(out, "TestA"); got != "SKIP" {
		t.Errorf("testResult = %q, want SKIP", got)
	}
	if got := testResult(out, "TestC"); got != "" {
		t.Errorf("testResult of a test not run = %q", got)
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, d := range []Disk{{Name: "results"}, {Name: ""}, {Name: "a b", FS: Raw}, {Name: "x", FS: "zfs"}, {Name: "123456789012345678901", FS: Raw}} {
		if err := (Options{Disks: []Disk{d}}).check(); err == nil {
			t.Errorf("disk %+v accepted", d)
		}
	}
	if err := (Options{Disks: []Disk{{Name: "a", FS: Raw}, {Name: "a", FS: XFS}}}).check(); err == nil {
		t.Error("two disks named a accepted")
	}
	if err := (Options{Disks: []Disk{{Name: "data_1", FS: XFS}, {Name: "q-2", FS: Ext4Quota}}}).check(); err != nil {
		t.Error(err)
	}
}
