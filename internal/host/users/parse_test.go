package users

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTripUnchanged(t *testing.T) {
	type src struct{ dir, name string }
	var cases []src
	for _, name := range []string{"passwd", "shadow", "group", "gshadow"} {
		cases = append(cases, src{"/etc", name}, src{"testdata/odd", name})
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(filepath.Join(c.dir, c.name), "/", "_"), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(c.dir, c.name))
			if err != nil {
				t.Skip(err)
			}
			k := kindOf(t, c.name)
			got := render(parseRecords(k, data))
			if !bytes.Equal(got, data) {
				t.Errorf("round trip differs:\n%s", cmp.Diff(string(data), string(got)))
			}
		})
	}
}

func kindOf(t *testing.T, name string) fileKind {
	t.Helper()
	for k := range numFiles {
		if k.String() == name {
			return k
		}
	}
	t.Fatalf("no kind %q", name)
	return 0
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		kind  fileKind
		line  string
		entry bool
		nis   bool
		ok    bool
	}{
		{passwdFile, "root:x:0:0:root:/root:/bin/bash\n", true, false, true},
		{passwdFile, "root:x:0:0:root:/root:/bin/bash", true, false, true},
		{passwdFile, "\n", false, false, false},
		{passwdFile, "# comment\n", false, false, false},
		{passwdFile, "+::::::\n", false, true, false},
		{passwdFile, "-baduser::::::\n", false, true, false},
		{passwdFile, "short:x:1:1\n", true, false, false},
		{passwdFile, "extra:x:1:1:::/bin/sh:\n", true, false, false},
		{passwdFile, ":x:1:1:::\n", true, false, false},
		{passwdFile, "neg:x:-1:1:::\n", true, false, false},
		{passwdFile, "big:x:4294967296:1:::\n", true, false, false},
		{passwdFile, "max:x:4294967295:1:::\n", true, false, true},
		{passwdFile, "plus:x:+1:1:::\n", true, false, false},
		{shadowFile, "u:!:19000:0:99999:7:::\n", true, false, true},
		{shadowFile, "u:!:-1::::::\n", true, false, true},
		{shadowFile, "u:!:x::::::\n", true, false, false},
		{shadowFile, "u:!:19000:0:99999\n", true, false, false},
		{shadowFile, "u:!:+5::::::\n", true, false, false},
		{groupFile, "g:x:10:a,b\n", true, false, true},
		{groupFile, "g:x:ten:a,b\n", true, false, false},
		{groupFile, "g:x:10\n", true, false, false},
		{gshadowFile, "g:!:a:b,c\n", true, false, true},
		{gshadowFile, "g:!:a\n", true, false, false},
	}
	for _, tt := range tests {
		r := parseLine(tt.kind, tt.line)
		if r.entry != tt.entry || r.nis != tt.nis || r.valid() != tt.ok {
			t.Errorf("%s %q: entry=%v nis=%v valid=%v (err %v), want %v %v %v",
				tt.kind, tt.line, r.entry, r.nis, r.valid(), r.err, tt.entry, tt.nis, tt.ok)
		}
		if r.raw != tt.line {
			t.Errorf("%s %q: raw %q", tt.kind, tt.line, r.raw)
		}
	}
}

func TestTypedViews(t *testing.T) {
	u := userOf(parseLine(passwdFile, "padded:x:0030:0031:a,b:/home/p:/bin/sh").fields)
	if diff := cmp.Diff(User{Name: "padded", Password: "x", UID: 30, GID: 31, Comment: "a,b", Home: "/home/p", Shell: "/bin/sh"}, u); diff != "" {
		t.Error(diff)
	}
	s := shadowOf(parseLine(shadowFile, "u:!:19000:0::7::-1:").fields)
	want := Shadow{Password: "!", LastChange: DaysOf(19000), Min: DaysOf(0), Warn: DaysOf(7), Expire: DaysOf(-1)}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Error(diff)
	}
	if got := strings.Join(shadowFields("u", &s), ":"); got != "u:!:19000:0::7::-1:" {
		t.Errorf("shadow rendered %q", got)
	}
	g := groupOf(parseLine(groupFile, "g:x:10:").fields)
	if g.Members != nil {
		t.Errorf("empty member list = %q, want nil", g.Members)
	}
	gs := gshadowOf(parseLine(gshadowFile, "g:!:a:b,c").fields)
	if diff := cmp.Diff(GShadow{Password: "!", Admins: []string{"a"}, Members: []string{"b", "c"}}, gs); diff != "" {
		t.Error(diff)
	}
}

func TestRenderAddsMissingNewlineOnlyWhenNotLast(t *testing.T) {
	recs := parseRecords(groupFile, []byte("a:x:1:\nb:x:2:"))
	if got := string(render(recs)); got != "a:x:1:\nb:x:2:" {
		t.Errorf("unchanged: %q", got)
	}
	recs = append(recs, newRecord([]string{"c", "x", "3", ""}))
	if got := string(render(recs)); got != "a:x:1:\nb:x:2:\nc:x:3:\n" {
		t.Errorf("appended: %q", got)
	}
}
