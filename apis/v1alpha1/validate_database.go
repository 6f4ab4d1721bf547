package v1alpha1

import (
	"fmt"
	"regexp"
)

// Database limits.
const (
	MaxDatabaseName   = 63
	MaxDatabaseUser   = 32 // MySQL's limit; MariaDB allows 80, PostgreSQL 63
	MaxDBConnections  = 10000
	databaseIdentHint = "lowercase letters, digits and '_', starting with a letter"
)

var (
	dbNameRE  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	dbUserRE  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	charsetRE = regexp.MustCompile(`^[a-z0-9_]{0,64}$`)
)

// reservedDatabases and reservedDBUsers belong to the database servers themselves.
var (
	reservedDatabases = map[string]bool{
		"mysql": true, "information_schema": true, "performance_schema": true, "sys": true,
		"postgres": true, "template0": true, "template1": true,
	}
	reservedDBUsers = map[string]bool{
		"root": true, "mysql": true, "postgres": true, "mariadb_sys": true,
		"debian_sys_maint": true, "admin": true, "wcp": true, "wcp360": true, "wcpd": true,
	}
)

// Validate checks the database's metadata and spec. Empty fields that
// Default fills in are accepted.
func (d *Database) Validate() ErrorList {
	errs := validateTypeMeta(d.TypeMeta, KindDatabase)
	errs = append(errs, validateMeta(&d.Metadata, checkDatabaseObjectName)...)
	return append(errs, validateDatabaseSpec(NewPath("spec"), &d.Spec)...)
}

func checkDatabaseObjectName(name string) string {
	if !isDNSLabel(name) {
		return dnsLabelDetail
	}
	return ""
}

func validateDatabaseSpec(p Path, s *DatabaseSpec) ErrorList {
	errs := appendErr(nil,
		checkTenantRef(p.Child("tenant"), s.Tenant),
		checkEnum(p.Child("engine"), s.Engine, EngineMariaDB, EnginePostgreSQL),
		checkDBIdent(p.Child("databaseName"), s.DatabaseName, dbNameRE, MaxDatabaseName, reservedDatabases),
		checkDBIdent(p.Child("user"), s.User, dbUserRE, MaxDatabaseUser, reservedDBUsers),
		checkInt(p.Child("maxConnections"), int64(s.MaxConnections), 0, MaxDBConnections, false))
	if !charsetRE.MatchString(s.Charset) {
		errs = append(errs, Invalid(p.Child("charset"), s.Charset, "must be at most 64 of a-z, 0-9 and '_'"))
	}
	if !charsetRE.MatchString(s.Collation) {
		errs = append(errs, Invalid(p.Child("collation"), s.Collation, "must be at most 64 of a-z, 0-9 and '_'"))
	} else if s.Collation != "" && s.Engine == EnginePostgreSQL {
		errs = append(errs, Forbidden(p.Child("collation"), "only used with engine mariadb"))
	}
	return errs
}

func checkDBIdent(p Path, v string, re *regexp.Regexp, maxLen int, reserved map[string]bool) *FieldError {
	switch {
	case v == "":
		return nil
	case len(v) > maxLen:
		return TooLong(p, v, fmt.Sprintf("must be at most %d characters (the default is built from "+
			"the tenant and metadata.name; set it explicitly when they are too long)", maxLen))
	case !re.MatchString(v):
		return Invalid(p, v, "must be "+databaseIdentHint)
	case reserved[v]:
		return Forbidden(p, fmt.Sprintf("%q is reserved by the database server", v))
	}
	return nil
}
