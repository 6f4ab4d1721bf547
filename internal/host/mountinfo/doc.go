// Package mountinfo reads /proc/<pid>/mountinfo, the mounts of a process's
// mount namespace as proc(5) describes them:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//	(1)(2)(3)   (4)   (5)      (6)      (7)   (8)  (9)    (10)        (11)
//
// Fields are separated by one space; the kernel writes a space, tab,
// newline or backslash inside a field as an octal escape ("\040" for a
// space; mangle() and seq_escape() in fs/proc_namespace.c), which Parse
// undoes. The optional fields (7) end at a lone "-" (8).
//
//	mounts, err := mountinfo.Read("/proc/self/mountinfo")
//	m, ok := mountinfo.Holding(mounts, "/srv/www/acme")
package mountinfo
