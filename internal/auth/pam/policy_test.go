package pam

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPolicyDecide(t *testing.T) {
	const admins = 990
	tests := []struct {
		name     string
		p        policy
		a        account
		adminGID int
		want     Identity
		ok       bool
	}{
		{"root", policy{}, account{Name: "root", UID: 0, GIDs: []int{0}}, -1, Identity{Name: "root", Root: true}, true},
		{"root denied", policy{denyRoot: true}, account{Name: "root", UID: 0, GIDs: []int{0}}, -1, Identity{Name: "root", Root: true}, false},
		{"root denied even in the admin group", policy{denyRoot: true}, account{Name: "root", UID: 0, GIDs: []int{0, admins}}, admins,
			Identity{Name: "root", Root: true, Admin: true}, false},
		{"another uid 0 is root", policy{}, account{Name: "toor", UID: 0}, -1, Identity{Name: "toor", Root: true}, true},
		{"admin", policy{}, account{Name: "alice", UID: 1000, GIDs: []int{1000, admins}}, admins,
			Identity{Name: "alice", UID: 1000, Admin: true}, true},
		{"admin group as primary group", policy{}, account{Name: "alice", UID: 1000, GIDs: []int{admins}}, admins,
			Identity{Name: "alice", UID: 1000, Admin: true}, true},
		{"not in the group", policy{}, account{Name: "bob", UID: 1001, GIDs: []int{1001}}, admins, Identity{Name: "bob", UID: 1001}, false},
		{"no admin group", policy{}, account{Name: "bob", UID: 1001, GIDs: []int{1001}}, -1, Identity{Name: "bob", UID: 1001}, false},
		{"allowed: a tenant's principal", policy{allow: func(n string) bool { return n == "bob" }}, account{Name: "bob", UID: 1001, GIDs: []int{1001}}, admins,
			Identity{Name: "bob", UID: 1001}, true},
		{"not allowed", policy{allow: func(n string) bool { return n == "carol" }}, account{Name: "bob", UID: 1001, GIDs: []int{1001}}, admins,
			Identity{Name: "bob", UID: 1001}, false},
		{"allow does not override a denied root", policy{denyRoot: true, allow: func(string) bool { return true }}, account{Name: "root", UID: 0}, -1,
			Identity{Name: "root", Root: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.p.decide(tt.a, tt.adminGID)
			if ok != tt.ok {
				t.Errorf("allowed = %v, want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidUser(t *testing.T) {
	tests := map[string]bool{
		"root": true, "alice": true, "a.b-c_d": true, "user@example.com": true,
		"": false, "-root": false, "+root": false, "ro\x00ot": false, "root\n": false,
		"a:b": false, "../x": false, strings.Repeat("a", 257): false, strings.Repeat("a", 256): true,
	}
	for in, want := range tests {
		if got := validUser(in); got != want {
			t.Errorf("validUser(%q) = %v", in, got)
		}
	}
}

func TestValidPassword(t *testing.T) {
	tests := map[string]bool{
		"secret": true, "with space and ünïcode": true, strings.Repeat("x", 4096): true,
		"": false, "sec\x00ret": false, strings.Repeat("x", 4097): false,
	}
	for in, want := range tests {
		if got := validPassword(in); got != want {
			t.Errorf("validPassword(%.20q) = %v", in, got)
		}
	}
}

func FuzzValidUser(f *testing.F) {
	for _, s := range []string{"root", "", "-x", "a\x00b", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !validUser(s) {
			return
		}
		if s == "" || len(s) > 256 || strings.ContainsAny(s, "\x00\n:/") {
			t.Errorf("validUser accepted %q", s)
		}
	})
}
