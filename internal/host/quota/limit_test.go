package quota

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRounding(t *testing.T) {
	for _, c := range []struct {
		n, unit                 uint64
		ceil, roundUp, multiply uint64
	}{
		{0, 512, 0, 0, 0},
		{1, 512, 1, 512, 512},
		{512, 512, 1, 512, 512 * 512},
		{513, 1024, 1, 1024, 513 * 1024},
		{8 << 20, 4096, 2048, 8 << 20, 8 << 32},
		{8<<20 + 1, 4096, 2049, 8<<20 + 4096, (8<<20 + 1) * 4096},
		{math.MaxUint64, 512, math.MaxUint64/512 + 1, math.MaxUint64 / 512 * 512, math.MaxUint64},
		{math.MaxUint64 / 1024, 1024, math.MaxUint64/1024/1024 + 1, (math.MaxUint64/1024/1024 + 1) * 1024, math.MaxUint64 / 1024 * 1024},
		{math.MaxUint64 / 1024 * 1024, 1024, math.MaxUint64 / 1024, math.MaxUint64 / 1024 * 1024, math.MaxUint64},
	} {
		if got := ceilDiv(c.n, c.unit); got != c.ceil {
			t.Errorf("ceilDiv(%d, %d) = %d, want %d", c.n, c.unit, got, c.ceil)
		}
		if got := roundUp(c.n, c.unit); got != c.roundUp {
			t.Errorf("roundUp(%d, %d) = %d, want %d", c.n, c.unit, got, c.roundUp)
		}
		if got := mulSat(c.n, c.unit); got != c.multiply {
			t.Errorf("mulSat(%d, %d) = %d, want %d", c.n, c.unit, got, c.multiply)
		}
	}
}

// XFS's fs_disk_quota counts space in 512-byte basic blocks, limits and
// usage alike.
func TestXFSUnits(t *testing.T) {
	d := xfsLimit(20001, Limit{Bytes: 8 << 20, Inodes: 100})
	want := fsDiskQuota{version: 1, flags: 2, fieldmask: 0xf, id: 20001, blkHardlimit: 16384, inoHardlimit: 100}
	if d != want {
		t.Errorf("xfsLimit = %+v, want %+v", d, want)
	}
	if d := xfsLimit(1, Limit{Bytes: 1}); d.blkHardlimit != 1 {
		t.Errorf("1 byte is %d basic blocks, want 1 (rounded up)", d.blkHardlimit)
	}
	got := xfsUsage(fsDiskQuota{bcount: 3, icount: 7, blkHardlimit: 16384, inoHardlimit: 100, blkSoftlimit: 2, inoSoftlimit: 5})
	if d := cmp.Diff(Usage{Bytes: 1536, Inodes: 7, Limit: Limit{Bytes: 8 << 20, Inodes: 100}, Soft: Limit{Bytes: 1024, Inodes: 5}}, got); d != "" {
		t.Errorf("xfsUsage (-want +got):\n%s", d)
	}
}

// ext4's if_dqblk has space limits in 1 KiB blocks but the usage,
// dqb_curspace, in bytes.
func TestVFSUnits(t *testing.T) {
	d := vfsLimit(Limit{Bytes: 8 << 20, Inodes: 100})
	want := ifDqblk{bhardlimit: 8192, ihardlimit: 100, valid: 5}
	if d != want {
		t.Errorf("vfsLimit = %+v, want %+v", d, want)
	}
	if d := vfsLimit(Limit{Bytes: 1025}); d.bhardlimit != 2 {
		t.Errorf("1025 bytes are %d KiB blocks, want 2 (rounded up)", d.bhardlimit)
	}
	got := vfsUsage(ifDqblk{curspace: 1536, curinodes: 7, bhardlimit: 8192, ihardlimit: 100, bsoftlimit: 1, isoftlimit: 5})
	if d := cmp.Diff(Usage{Bytes: 1536, Inodes: 7, Limit: Limit{Bytes: 8 << 20, Inodes: 100}, Soft: Limit{Bytes: 1024, Inodes: 5}}, got); d != "" {
		t.Errorf("vfsUsage (-want +got):\n%s", d)
	}
}

// Both interfaces say the same of the same limit once SetLimit has rounded
// it to the block size.
func TestUnitsAgree(t *testing.T) {
	info := Info{BlockSize: 4096}
	for _, b := range []uint64{0, 1, 1023, 4096, 8<<20 + 1, 1 << 50} {
		l := Limit{Bytes: info.roundBytes(b), Inodes: 9}
		x := xfsUsage(xfsLimit(1, l)).Limit
		v := vfsUsage(vfsLimit(l)).Limit
		if x != l || v != l {
			t.Errorf("limit %d (rounded %d): XFS reads back %+v, VFS %+v", b, l.Bytes, x, v)
		}
	}
}

func TestSetLimitUnsupported(t *testing.T) {
	info := Info{FSType: "tmpfs", Reason: "tmpfs at /srv/www has no project quota"}
	if err := SetLimit(info, 20001, Limit{Bytes: 1}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("SetLimit on tmpfs: %v, want ErrUnsupported", err)
	}
	if _, err := Get(info, 20001); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Get on tmpfs: %v, want ErrUnsupported", err)
	}
	if err := SetLimit(Info{Project: true, FSType: "xfs"}, 0, Limit{}); err == nil {
		t.Error("SetLimit of project 0: no error")
	}
}
