package tenant

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// archiveHome writes home as a gzip'ed tar to dst (0600), without
// following symlinks: a link is archived as a link. It writes to a temp
// file first, so a failed archive never looks like a complete one.
func archiveHome(home, dst string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	tmp := dst + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// Everything is read through an os.Root: a tenant's symlink can never
	// lead the archive (which root reads) out of the home.
	root, err := os.OpenRoot(home)
	if err != nil {
		return err
	}
	defer root.Close() //nolint:errcheck // read-only
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	base := filepath.Base(home)
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, werr error) error {
		if werr != nil {
			return werr
		}
		fi, err := d.Info() // lstat: a symlink is described, not followed
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = root.Readlink(rel); err != nil {
				return err
			}
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0 {
			return nil // sockets and FIFOs are not data
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = path.Join(base, rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		src, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, io.LimitReader(src, hdr.Size))
		_ = src.Close()
		return err
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", home, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// archiveName is where the home of tenant goes when it is archived.
func archiveName(dir, tenant string, now time.Time) string {
	return filepath.Join(dir, fmt.Sprintf("%s-%s.tar.gz", tenant, now.UTC().Format("20060102T150405Z")))
}

// killUser sends SIGKILL to every process whose real or effective uid is
// uid, and waits (bounded) until none is left: a user cannot be removed
// while it runs anything, and its home cannot be archived consistently.
func killUser(uid int, wait time.Duration) error {
	deadline := time.Now().Add(wait) //nolint:forbidigo // a bounded wait, not a timestamp
	for {
		pids, err := processesOf(uid)
		if err != nil || len(pids) == 0 {
			return err
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) { //nolint:forbidigo // see above
			return fmt.Errorf("processes of uid %d still running after SIGKILL: %v", uid, pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesOf lists the pids whose real or effective uid is uid.
func processesOf(uid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // gone meanwhile
		}
		if err != nil {
			return nil, err
		}
		if statusHasUID(string(b), uid) && !isZombie(string(b)) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func statusHasUID(status string, uid int) bool {
	for line := range strings.SplitSeq(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			want := strconv.Itoa(uid)
			return len(f) >= 2 && (f[0] == want || f[1] == want)
		}
	}
	return false
}

func isZombie(status string) bool {
	for line := range strings.SplitSeq(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "State:"); ok {
			return strings.HasPrefix(strings.TrimSpace(rest), "Z")
		}
	}
	return false
}
