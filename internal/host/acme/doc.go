// Package acme obtains certificates from an RFC 8555 certificate authority
// (Let's Encrypt, its staging, or any ACME CA) with go-acme/lego v5, over
// HTTP-01 served by nginx.
//
// # Accounts
//
// A Client talks to one ACME directory with one account. The account's key
// and registration live under Options.StateDir, in
// accounts/<first 16 hex digits of the SHA-256 of the directory URL>/:
//
//	account.key   ECDSA P-256 key, PKCS #8 PEM, root 0600
//	account.json  the directory URL, contact email and account URL
//
// The account directory is 0700; StateDir itself is created 0755 when
// missing and never tightened, because nginx's challenge directory
// (/var/lib/wcp360/acme/challenges by default) lies inside it and nginx's
// workers must traverse it. The account is registered on the first Obtain
// (with external account binding when Options.EAB is set: a key id and a
// base64url HMAC key from the CA) and reused from then on, also by a new
// Client over the same StateDir. When the CA no longer knows the account
// (accountDoesNotExist), the registration is dropped and made again once.
//
// # HTTP-01 through nginx
//
// Every nginx site serves /.well-known/acme-challenge/ from one directory
// (internal/host/nginx's Options.ACMEDir). The client's challenge provider
// writes the key authorization to <ChallengeDir>/<token> (0644, atomically,
// so nginx never serves half a token) before telling the CA to validate,
// and removes it afterwards, whatever the outcome. There is no extra
// listener and nothing to reload.
//
// # Obtaining
//
// Obtain orders one certificate for all the names given (the first is the
// subject's common name when it fits), solves HTTP-01 for each and returns
// the chain (leaf first) and a new ECDSA P-256 key, both PEM. WriteFiles
// lands them atomically, key first, root 0600. An error from the CA is an
// *Error whose Problem carries the CA's problem document (type, detail,
// subproblems) and, when rate limited, Retry-After.
//
// # Renewal
//
// RenewAt is the pure renewal decision: at two thirds of the lifetime,
// moved earlier by up to a tenth of the lifetime by a caller-supplied
// jitter, or earlier still when the CA's renewal information (ARI, RFC
// 9773) suggests a window that starts before that. Client.RenewalInfo
// fetches ARI (lego v5 supports it); ErrNoARI means the CA does not offer
// it (Debian's pebble 2.4 does not).
//
// # Logging
//
// lego logs through its own package-level slog logger (lego/log.SetDefault);
// this package does not change it: the daemon decides in cmd/.
//
// # Tests
//
// The tests run Debian's pebble in a sandbox with PEBBLE_VA_NOSLEEP=1 and
// its HTTP-01 port pointed at a real nginx that serves the challenge
// directory; the test names resolve to 127.0.0.1 through the sandbox's
// /etc/hosts.
package acme
