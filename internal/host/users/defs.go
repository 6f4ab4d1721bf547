package users

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// defs are the settings useradd takes the shadow fields of a new user
// from: PASS_MIN_DAYS, PASS_MAX_DAYS, PASS_WARN_AGE in login.defs and
// INACTIVE in default/useradd. Absent or unreadable settings are empty
// fields, as in useradd (getdef_num(..., -1)).
type defs struct {
	passMin, passMax, passWarn, inactive Days
}

func readDefs(loginDefs, useraddDefaults string) defs {
	var d defs
	if b, err := os.ReadFile(loginDefs); err == nil {
		kv := parseDefs(b, false)
		d.passMin = defDays(kv["PASS_MIN_DAYS"])
		d.passMax = defDays(kv["PASS_MAX_DAYS"])
		d.passWarn = defDays(kv["PASS_WARN_AGE"])
	}
	if b, err := os.ReadFile(useraddDefaults); err == nil {
		d.inactive = defDays(parseDefs(b, true)["INACTIVE"])
	}
	return d
}

// parseDefs reads "KEY value" lines (login.defs) or "KEY=value" lines
// (default/useradd); '#' starts a comment line; values may be quoted.
func parseDefs(b []byte, equals bool) map[string]string {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		var k, v string
		if equals {
			k, v, _ = strings.Cut(line, "=")
		} else {
			k, v, _ = strings.Cut(strings.ReplaceAll(line, "\t", " "), " ")
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		kv[strings.TrimSpace(k)] = v
	}
	return kv
}

// defDays is a setting as a shadow field: -1 or unparsable is empty.
func defDays(v string) Days {
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil || n < 0 {
		return Days{}
	}
	return DaysOf(n)
}
