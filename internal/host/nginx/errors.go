package nginx

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ConfigError is a domain whose own configuration nginx refused (its site
// file, its admin include directory, its certificate or log files), or
// whose admin include directory is unsafe (Err is ErrUnsafeCustomDir). The
// domain's previous file was restored (or, for an unsafe include
// directory, the site is served without it). Retrying the same change
// fails the same way: a caller marks the domain Stalled with Error().
type ConfigError struct {
	Domain string
	// NginxMessage is what `nginx -t` said, "" for ErrUnsafeCustomDir.
	NginxMessage string
	Err          error
}

func (e *ConfigError) Error() string {
	if e.NginxMessage != "" {
		return fmt.Sprintf("nginx rejected the configuration of %s: %s", e.Domain, e.NginxMessage)
	}
	return fmt.Sprintf("nginx configuration of %s: %v", e.Domain, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// TestError is an `nginx -t` failure of a batch that could not be pinned
// on one of its domains (a message naming no file of theirs). Every change
// of the batch was restored; the caller retries later.
type TestError struct {
	NginxMessage string
	// StillFailing: the configuration fails even without this batch's
	// changes; something outside WCP360's sites is broken.
	StillFailing bool
}

func (e *TestError) Error() string {
	if e.StillFailing {
		return "nginx -t fails even without this change (the problem is outside this batch): " + e.NginxMessage
	}
	return "nginx -t failed for a batch of changes and named none of them; all were undone: " + e.NginxMessage
}

// ReloadError is a configuration that passed nginx -t but that the master
// refused at the reload (too many open files, an address it cannot bind):
// it keeps serving the previous configuration, and the batch's changes
// were undone. Retried later, it may succeed.
type ReloadError struct {
	NginxMessage string
}

func (e *ReloadError) Error() string {
	return "nginx refused to reload (the previous configuration still serves): " + e.NginxMessage
}

// ErrRejected is the Err of a ConfigError from nginx -t.
var ErrRejected = errors.New("rejected by nginx -t")

// nginxMessage keeps the lines of nginx's output that say what is wrong.
func nginxMessage(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasSuffix(l, "test failed") || strings.HasSuffix(l, "syntax is ok") {
			continue
		}
		// "2026/01/02 03:04:05 [emerg] 123#123: ..." and "nginx: [emerg] ..."
		l = logPrefixRE.ReplaceAllString(l, "[$1] ")
		keep = append(keep, l)
	}
	if len(keep) == 0 {
		return strings.TrimSpace(out)
	}
	return strings.Join(keep, "; ")
}

var logPrefixRE = regexp.MustCompile(`^(?:nginx: |\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?\[(\w+)\](?: \d+#\d+:)? ?`)

// mentions reports whether msg names path (or, for a path ending in "/",
// anything below it) as a whole path, not as part of a longer one.
func mentions(msg, path string) bool {
	for i := 0; ; {
		j := strings.Index(msg[i:], path)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(path)
		before := start == 0 || strings.IndexByte(" \"'(", msg[start-1]) >= 0
		after := strings.HasSuffix(path, "/") || end == len(msg) || strings.IndexByte(":\"' ),;", msg[end]) >= 0
		if before && after {
			return true
		}
		i = start + 1
	}
}

// hostWide reports a message about the host's resources rather than a
// site's configuration, even when it names a site's file: the site nginx
// happened to be opening is not at fault.
func hostWide(msg string) bool {
	for _, errno := range []string{"(12: ", "(23: ", "(24: ", "(28: "} { // ENOMEM, ENFILE, EMFILE, ENOSPC
		if strings.Contains(msg, errno) {
			return true
		}
	}
	return false
}
