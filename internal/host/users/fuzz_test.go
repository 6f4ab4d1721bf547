package users

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse: any bytes parse (never an error, never a panic), render back
// unchanged, and every entry that parses survives a render/parse round trip
// of its typed view.
func FuzzParse(f *testing.F) {
	f.Add(uint8(passwdFile), []byte("root:x:0:0:root:/root:/bin/bash\n+::::::"))
	f.Add(uint8(shadowFile), []byte("root:*:19000:0:99999:7:::\nu:!:-1::::::\n"))
	f.Add(uint8(groupFile), []byte("users:x:100:a,,b\n\n# c\nbroken\n"))
	f.Add(uint8(gshadowFile), []byte("users:!:a:b,c\r\n-x"))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		k := fileKind(kind % uint8(numFiles))
		recs := parseRecords(k, data)
		if got := render(recs); !bytes.Equal(got, data) {
			t.Fatalf("render(parse(%q)) = %q", data, got)
		}
		for _, r := range recs {
			if !r.valid() {
				continue
			}
			var fields []string
			switch k {
			case passwdFile:
				u := userOf(r.fields)
				fields = userFields(&u)
			case shadowFile:
				s := shadowOf(r.fields)
				fields = shadowFields(r.name(), &s)
			case groupFile:
				g := groupOf(r.fields)
				fields = groupFields(&g)
			case gshadowFile, numFiles:
				g := gshadowOf(r.fields)
				fields = gshadowFields(r.name(), &g)
			}
			line := strings.Join(fields, ":")
			r2 := parseLine(k, line+"\n")
			if !r2.valid() {
				t.Fatalf("%s: %q re-rendered as %q, which does not parse: %v", k, r.raw, line, r2.err)
			}
			if diff := cmp.Diff(typed(k, r.fields), typed(k, r2.fields)); diff != "" {
				t.Fatalf("%s: %q -> %q changed the entry:\n%s", k, r.raw, line, diff)
			}
		}
	})
}

func typed(k fileKind, f []string) any {
	switch k {
	case passwdFile:
		return userOf(f)
	case shadowFile:
		return shadowOf(f)
	case groupFile:
		return groupOf(f)
	default:
		return gshadowOf(f)
	}
}

// FuzzAddUser: whatever AddUser accepts is written as one well-formed
// entry that reads back as given, and every other line stays as it was.
func FuzzAddUser(f *testing.F) {
	f.Add("acme", "WCP360 tenant acme", "/srv/www/acme", "/usr/sbin/nologin", "!", 20000)
	f.Add("a:b", "x", "/x", "", "*", 1)
	f.Add("ok", "a\nroot::0:0::/:", "/x", "/bin/sh", "!", 2)
	f.Add("ok", "", "/x\n", "/bin/sh", "", 3)
	f.Fuzz(func(t *testing.T, name, comment, home, shell, password string, uid int) {
		passwd := "root:x:0:0:root:/root:/bin/bash\n+::::::\n"
		shadow := "root:*:19000:0:99999:7:::\n"
		tx := memTx(passwd, shadow, "root:x:0:\n", "root:*::\n")
		u := User{Name: name, UID: uid, GID: 0, Comment: comment, Home: home, Shell: shell, Shadow: &Shadow{Password: password}}
		if err := tx.AddUser(u); err != nil {
			if tx.Changed() {
				t.Fatalf("refused (%v) but changed", err)
			}
			return
		}
		out := string(render(tx.files[passwdFile].recs))
		want := "root:x:0:0:root:/root:/bin/bash\n"
		if !strings.HasPrefix(out, want) || !strings.HasSuffix(out, "\n+::::::\n") {
			t.Fatalf("other lines changed: %q", out)
		}
		recs := parseRecords(passwdFile, []byte(out))
		if len(recs) != 3 || !recs[1].valid() {
			t.Fatalf("not one well-formed new line: %q", out)
		}
		u.Password, u.Shadow = "x", nil
		if diff := cmp.Diff(u, userOf(recs[1].fields)); diff != "" {
			t.Fatalf("entry reads back differently:\n%s", diff)
		}
		srecs := parseRecords(shadowFile, render(tx.files[shadowFile].recs))
		if len(srecs) != 2 || !srecs[1].valid() || shadowOf(srecs[1].fields).Password != password {
			t.Fatalf("shadow: %q", render(tx.files[shadowFile].recs))
		}
	})
}

// memTx is a transaction over in-memory files, for fuzzing.
func memTx(passwd, shadow, group, gshadow string) *Tx {
	tx := &Tx{now: fixedClock()}
	for k, s := range []string{passwd, shadow, group, gshadow} {
		tx.files[k] = &dbFile{kind: fileKind(k), path: fileKind(k).String(), exists: true, data: []byte(s), recs: parseRecords(fileKind(k), []byte(s))}
	}
	return tx
}
