package v1alpha1

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"strings"
)

// Tenant limits.
const (
	MaxDisplayName       = 256
	MinTenantUID         = 1000
	MaxTenantUID         = math.MaxInt32 - 1
	MaxAuthorizedKeys    = 100
	MaxAuthorizedKeySize = 16 * 1024
	MaxINISettings       = 100
	MaxINIValue          = 256
)

// Validate checks the tenant's metadata and spec. Empty fields that Default
// fills in are accepted.
func (t *Tenant) Validate() ErrorList {
	errs := validateTypeMeta(t.TypeMeta, KindTenant)
	errs = append(errs, validateMeta(&t.Metadata, checkTenantName)...)
	return append(errs, validateTenantSpec(NewPath("spec"), &t.Spec)...)
}

func validateTenantSpec(p Path, s *TenantSpec) ErrorList {
	var errs ErrorList
	errs = appendErr(errs, checkDisplayName(p.Child("displayName"), s.DisplayName))
	if s.Node != "" && !isDNSLabel(s.Node) {
		errs = append(errs, Invalid(p.Child("node"), s.Node, dnsLabelDetail))
	}
	errs = appendErr(errs, checkUID(p.Child("uid"), s.UID))
	errs = append(errs, validateAccess(p.Child("access"), &s.Access)...)
	errs = append(errs, validateLimits(p.Child("limits"), &s.Limits)...)
	errs = append(errs, validateTenantPHP(p.Child("php"), &s.PHP)...)
	return appendErr(errs,
		checkEnum(p.Child("driftPolicy"), s.DriftPolicy, DriftCorrect, DriftReport, DriftIgnore),
		checkEnum(p.Child("homeDeletionPolicy"), s.HomeDeletionPolicy, HomeArchive, HomeDelete, HomeRetain))
}

func checkDisplayName(p Path, s string) *FieldError {
	switch {
	case len(s) > MaxDisplayName:
		return TooLong(p, s, fmt.Sprintf("must be at most %d bytes", MaxDisplayName))
	case hasControl(s):
		return Invalid(p, s, "must be valid UTF-8 without control characters")
	}
	return nil
}

func checkUID(p Path, uid int64) *FieldError {
	if uid == 65534 {
		return Invalid(p, uid, "65534 is nobody")
	}
	if uid == 0 || (uid >= MinTenantUID && uid <= MaxTenantUID) {
		return nil
	}
	return OutOfRange(p, uid, fmt.Sprintf("must be 0 (allocate one) or between %d and %d", MinTenantUID, MaxTenantUID))
}

func validateAccess(p Path, a *TenantAccess) ErrorList {
	var errs ErrorList
	kp := p.Child("authorizedKeys")
	if len(a.AuthorizedKeys) > MaxAuthorizedKeys {
		errs = append(errs, TooLong(kp, nil, fmt.Sprintf("at most %d keys", MaxAuthorizedKeys)))
	}
	seen := map[string]int{}
	for i, k := range a.AuthorizedKeys {
		id, why := checkAuthorizedKey(k)
		if why != "" {
			errs = append(errs, Invalid(kp.Index(i), k, why))
			continue
		}
		if j, dup := seen[id]; dup {
			errs = append(errs, Duplicate(kp.Index(i), nil, fmt.Sprintf("the same key as authorizedKeys[%d]", j)))
			continue
		}
		seen[id] = i
	}
	return errs
}

// sshKeyTypes are the public key types accepted in authorizedKeys.
var sshKeyTypes = map[string]bool{
	"ssh-ed25519": true, "ssh-rsa": true,
	"ecdsa-sha2-nistp256": true, "ecdsa-sha2-nistp384": true, "ecdsa-sha2-nistp521": true,
	"sk-ssh-ed25519@openssh.com": true, "sk-ecdsa-sha2-nistp256@openssh.com": true,
}

// checkAuthorizedKey checks one "type base64 [comment]" line. It returns the
// "type base64" part, to find duplicates, or why the line is refused.
func checkAuthorizedKey(k string) (id, why string) {
	switch {
	case len(k) > MaxAuthorizedKeySize:
		return "", fmt.Sprintf("must be at most %d bytes", MaxAuthorizedKeySize)
	case strings.ContainsAny(k, "\r\n"):
		return "", "must be a single line"
	case hasControl(k):
		return "", "must not contain control characters"
	case strings.TrimSpace(k) != k:
		return "", "must not start or end with spaces"
	}
	f := strings.Fields(k)
	if len(f) < 2 {
		return "", "must be an OpenSSH public key: \"<type> <base64 key> [comment]\""
	}
	if !sshKeyTypes[f[0]] {
		return "", "key type must be one of ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, " +
			"sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com (options such as command= are not accepted)"
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || !blobHasType(blob, f[0]) {
		return "", "the key data is not a " + f[0] + " public key"
	}
	return f[0] + " " + f[1], ""
}

// blobHasType reports whether an SSH wire-format public key starts with
// the given type string and carries key material after it.
func blobHasType(blob []byte, typ string) bool {
	if len(blob) < 4 {
		return false
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) != uint64(len(typ)) || len(blob) < 4+len(typ)+4 {
		return false
	}
	return bytes.Equal(blob[4:4+len(typ)], []byte(typ))
}

func validateLimits(p Path, l *TenantLimits) ErrorList {
	high, e1 := checkQuantity(p.Child("memoryHigh"), l.MemoryHigh, 16*MiB, TiB, false)
	maxm, e2 := checkQuantity(p.Child("memoryMax"), l.MemoryMax, 16*MiB, TiB, false)
	errs := appendErr(nil, e1, e2)
	if e1 == nil && e2 == nil && l.MemoryHigh != "" && l.MemoryMax != "" && high > maxm {
		errs = append(errs, Invalid(p.Child("memoryHigh"), l.MemoryHigh, "must not be more than memoryMax ("+string(l.MemoryMax)+")"))
	}
	if l.CPU != "" {
		if _, err := ParseCPUPercent(l.CPU); err != nil {
			errs = append(errs, Invalid(p.Child("cpu"), l.CPU, fmt.Sprintf("must be a percentage of one CPU such as \"150%%\", from 1%% to %d%%", MaxCPUPercent)))
		}
	}
	errs = appendErr(errs, checkInt(p.Child("pids"), l.Pids, 16, 4194304, true))
	io := p.Child("io")
	// The kernel's throttle refuses 1 (and 0 means no limit here): a
	// limit below 1Ki per second or 10 IOPS would stop a site anyway.
	_, e3 := checkQuantity(io.Child("readBPS"), l.IO.ReadBPS, KiB, 100*GiB, true)
	_, e4 := checkQuantity(io.Child("writeBPS"), l.IO.WriteBPS, KiB, 100*GiB, true)
	errs = appendErr(errs, e3, e4,
		checkInt(io.Child("readIOPS"), l.IO.ReadIOPS, 10, 10_000_000, true),
		checkInt(io.Child("writeIOPS"), l.IO.WriteIOPS, 10, 10_000_000, true))
	disk := p.Child("disk")
	_, e5 := checkQuantity(disk.Child("bytes"), l.Disk.Bytes, MiB, PiB, true)
	return appendErr(errs, e5, checkInt(disk.Child("inodes"), l.Disk.Inodes, 100, 1<<32, true))
}

var phpVersionRE = regexp.MustCompile(`^[5-9]\.[0-9]{1,2}$`)

func checkPHPVersion(p Path, v string) *FieldError {
	if v == "" || phpVersionRE.MatchString(v) {
		return nil
	}
	return Invalid(p, v, "must be a PHP version such as \"8.3\" (major.minor), or empty for the host's default")
}

func validateTenantPHP(p Path, php *TenantPHP) ErrorList {
	errs := appendErr(nil,
		checkPHPVersion(p.Child("version"), php.Version),
		checkEnum(p.Child("processManager"), php.ProcessManager, "ondemand", "dynamic", "static"),
		checkInt(p.Child("maxChildren"), int64(php.MaxChildren), 1, 1000, true),
		checkInt(p.Child("maxExecutionTime"), int64(php.MaxExecutionTime), 0, 86400, false))
	_, e1 := checkQuantity(p.Child("memoryLimit"), php.MemoryLimit, 16*MiB, 16*GiB, false)
	_, e2 := checkQuantity(p.Child("uploadMaxSize"), php.UploadMaxSize, 0, 16*GiB, false)
	errs = appendErr(errs, e1, e2)
	return append(errs, validateINI(p.Child("ini"), php)...)
}

// iniKeys are the php.ini settings a tenant may set. Anything that can widen
// access (open_basedir, disable_functions, auto_prepend_file, extension,
// sendmail_path, ...) is deliberately absent.
var iniKeys = map[string]bool{
	"display_errors": true, "display_startup_errors": true, "log_errors": true,
	"error_reporting": true, "html_errors": true, "max_input_vars": true,
	"max_input_time": true, "max_input_nesting_level": true, "max_file_uploads": true,
	"file_uploads": true, "date.timezone": true, "default_charset": true,
	"default_socket_timeout": true, "session.gc_maxlifetime": true,
	"session.cookie_lifetime": true, "session.cookie_secure": true,
	"session.cookie_httponly": true, "session.cookie_samesite": true,
	"session.use_strict_mode": true, "session.name": true, "opcache.enable": true,
	"opcache.memory_consumption": true, "opcache.interned_strings_buffer": true,
	"opcache.max_accelerated_files": true, "opcache.revalidate_freq": true,
	"opcache.validate_timestamps": true, "post_max_size": true, "short_open_tag": true,
	"output_buffering": true, "allow_url_fopen": true, "zlib.output_compression": true,
	"realpath_cache_size": true, "realpath_cache_ttl": true, "mbstring.language": true,
	"precision": true, "serialize_precision": true, "implicit_flush": true,
	"user_agent": true, "auto_detect_line_endings": true, "pcre.backtrack_limit": true,
	"pcre.recursion_limit": true, "pcre.jit": true, "assert.active": true,
	"zend.assertions": true, "mail.add_x_header": true, "expose_php": true,
}

// INIKeyAllowed reports whether a php.ini setting may appear in spec.php.ini.
func INIKeyAllowed(key string) bool { return iniKeys[key] }

// iniValueRE is the safe charset of php.ini values: nothing that ends a
// line, starts a section, a comment, a quoted string or an ${expansion}.
var iniValueRE = regexp.MustCompile(`^[A-Za-z0-9 _.,:/+*~&|^!()%@-]*$`)

func validateINI(p Path, php *TenantPHP) ErrorList {
	var errs ErrorList
	if len(php.INI) > MaxINISettings {
		errs = append(errs, TooLong(p, nil, fmt.Sprintf("at most %d settings", MaxINISettings)))
	}
	for _, k := range sortedKeys(php.INI) {
		v, kp := php.INI[k], p.Key(k)
		switch {
		case !iniKeys[k]:
			errs = append(errs, Invalid(kp, k, "this php.ini setting cannot be set per tenant"))
		case k == "post_max_size" && php.UploadMaxSize != "":
			errs = append(errs, Forbidden(kp, "set by php.uploadMaxSize"))
		case len(v) > MaxINIValue:
			errs = append(errs, TooLong(kp, v, fmt.Sprintf("must be at most %d bytes", MaxINIValue)))
		case !iniValueRE.MatchString(v) || strings.TrimSpace(v) != v:
			errs = append(errs, Invalid(kp, v, "must use only letters, digits, spaces inside and _.,:/+*~&|^!()%@-"))
		}
	}
	return errs
}
